//go:build !linux

package masque

import "net"

// withGRO returns c: receive offload is Linux's.
func withGRO(c *net.UDPConn) net.PacketConn { return c }
