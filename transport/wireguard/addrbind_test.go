package wireguard

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// TestAddrBindListensOnItsAddressOnly: a bind on 127.0.0.2 leaves the same
// port free on 127.0.0.1 (StdNetBind would hold it on every address), and
// carries datagrams both ways.
func TestAddrBindListensOnItsAddressOnly(t *testing.T) {
	for _, tc := range []struct{ name, listen, other string }{
		{"ipv4", "127.0.0.2", "127.0.0.1"},
		{"ipv6", "::1", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewAddrBind(netip.MustParseAddr(tc.listen))
			if err != nil {
				t.Fatal(err)
			}
			fns, port, err := b.Open(0)
			if err != nil {
				t.Skipf("no %s on this host: %v", tc.listen, err)
			}
			defer b.Close()
			if len(fns) != 1 || port == 0 {
				t.Fatalf("Open = %d functions, port %d", len(fns), port)
			}
			other, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(tc.other), port)))
			if err != nil {
				t.Fatalf("%s:%d is taken by a bind on %s: %v", tc.other, port, tc.listen, err)
			}
			other.Close()

			peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(tc.listen)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			to := netip.AddrPortFrom(netip.MustParseAddr(tc.listen), port)
			for _, msg := range []string{"one", "two"} {
				if _, err := peer.WriteToUDPAddrPort([]byte(msg), to); err != nil {
					t.Fatal(err)
				}
			}
			bufs := [][]byte{make([]byte, 1500), make([]byte, 1500)}
			sizes, eps := make([]int, 2), make([]conn.Endpoint, 2)
			got := 0
			for got < 2 {
				n, err := fns[0](bufs[got:], sizes[got:], eps[got:])
				if err != nil {
					t.Fatal(err)
				}
				got += n
			}
			if string(bufs[0][:sizes[0]]) != "one" || string(bufs[1][:sizes[1]]) != "two" {
				t.Fatalf("received %q, %q", bufs[0][:sizes[0]], bufs[1][:sizes[1]])
			}
			from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			if eps[0].DstToString() != from.String() {
				t.Fatalf("endpoint %s, want the sender %s", eps[0].DstToString(), from)
			}
			if err := b.Send([][]byte{[]byte("back"), []byte("again")}, eps[0]); err != nil {
				t.Fatal(err)
			}
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			for _, want := range []string{"back", "again"} {
				buf := make([]byte, 100)
				n, src, err := peer.ReadFromUDPAddrPort(buf)
				if err != nil || string(buf[:n]) != want || src != to {
					t.Fatalf("peer got %q from %s, %v; want %q from %s", buf[:n], src, err, want, to)
				}
			}
			if err := b.Send([][]byte{[]byte("x")}, &conn.StdNetEndpoint{AddrPort: netip.MustParseAddrPort("[2001:db8::1]:51820")}); tc.name == "ipv4" && !errors.Is(err, ErrAddressFamily) {
				t.Fatalf("Send to IPv6 from an IPv4 bind: %v", err)
			}
			b.Close()
			if _, err := fns[0](bufs, sizes, eps); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("receive after Close: %v, want net.ErrClosed", err)
			}
		})
	}
	if _, err := NewAddrBind(netip.MustParseAddr("0.0.0.0")); err == nil {
		t.Fatal("NewAddrBind accepted the unspecified address")
	}
}
