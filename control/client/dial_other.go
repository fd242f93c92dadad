//go:build !linux

package client

import "syscall"

// clampMSS leaves the socket as it is: TCP_MAXSEG is set on Linux only.
func clampMSS(network, address string, c syscall.RawConn) error { return nil }
