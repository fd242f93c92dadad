package client

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// clampMSS sets TCP_MAXSEG on an API socket before it connects (net.Dialer.Control).
func clampMSS(network, address string, c syscall.RawConn) error {
	mss := apiMSS4
	if network == "tcp6" {
		mss = apiMSS6
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, mss)
	}); err != nil {
		return fmt.Errorf("set TCP_MAXSEG on the API socket to %s: %w", address, err)
	}
	if serr != nil {
		return fmt.Errorf("set TCP_MAXSEG on the API socket to %s: %w", address, serr)
	}
	return nil
}
