//go:build !linux

package wireguard

import "golang.zx2c4.com/wireguard/conn"

// defaultBind is wireguard-go's bind off Linux.
func defaultBind() conn.Bind { return conn.NewStdNetBind() }
