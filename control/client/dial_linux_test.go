package client

import (
	"context"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDialAPIClampsMSS: over loopback (MTU 65536) both ends of an API
// connection send segments no larger than what a 1280-byte path carries: the
// client's own socket, and the server's, which obeys the MSS the client's
// SYN announced.
func TestDialAPIClampsMSS(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		want          int
	}{{"tcp4", "127.0.0.1:0", apiMSS4}, {"tcp6", "[::1]:0", apiMSS6}} {
		t.Run(tc.network, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("listen on %s: %v", tc.addr, err)
			}
			defer ln.Close()
			c, err := dialAPI(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for side, conn := range map[string]net.Conn{"client": c, "server": s} {
				if got := maxSeg(t, conn); got > tc.want || got < 536 {
					t.Errorf("the %s's MSS is %d, want at most %d", side, got, tc.want)
				}
			}
		})
	}
}

// maxSeg reads TCP_MAXSEG of conn's socket.
func maxSeg(t *testing.T, conn net.Conn) int {
	t.Helper()
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mss int
	var serr error
	if err := rc.Control(func(fd uintptr) { mss, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return mss
}
