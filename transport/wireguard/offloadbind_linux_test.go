package wireguard

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// openOffloadPair opens two OffloadBinds on free ports and returns them
// with their receive functions for the family of ip.
func openOffloadPair(t *testing.T, ip string) (a, b *OffloadBind, recvB conn.ReceiveFunc, epB conn.Endpoint, epA netip.AddrPort) {
	t.Helper()
	a, b = NewOffloadBind(), NewOffloadBind()
	fnsA, portA, err := a.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	fnsB, portB, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if len(fnsA) != 2 || len(fnsB) != 2 {
		t.Skipf("need IPv4 and IPv6 sockets, got %d and %d", len(fnsA), len(fnsB))
	}
	is6 := netip.MustParseAddr(ip).Is6()
	recvB = fnsB[0]
	if is6 {
		recvB = fnsB[1]
	}
	if epB, err = a.ParseEndpoint(netip.AddrPortFrom(netip.MustParseAddr(ip), portB).String()); err != nil {
		t.Fatal(err)
	}
	return a, b, recvB, epB, netip.AddrPortFrom(netip.MustParseAddr(ip), portA)
}

// receiveN calls fn with batches of batch buffers until it has n messages.
func receiveN(t *testing.T, fn conn.ReceiveFunc, batch, n int) (msgs [][]byte, eps []conn.Endpoint, calls int) {
	t.Helper()
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16)
	}
	sizes := make([]int, batch)
	got := make([]conn.Endpoint, batch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(msgs) < n {
			k, err := fn(bufs, sizes, got)
			if err != nil {
				t.Errorf("receive: %v", err)
				return
			}
			calls++
			for i := range k {
				msgs = append(msgs, append([]byte(nil), bufs[i][:sizes[i]]...))
				eps = append(eps, got[i])
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("received %d of %d messages in 5 s", len(msgs), n)
	}
	return msgs, eps, calls
}

// TestOffloadBindBursts sends runs of equal-size datagrams (each run's last
// shorter, then a larger one that must start a new burst) over loopback:
// every datagram arrives intact and in order, from the sender's address,
// across receive calls smaller than a burst, and a run left in one GSO
// message.
func TestOffloadBindBursts(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			a, b, recvB, epB, from := openOffloadPair(t, ip)
			var want [][]byte
			sizes := []int{1200, 1200, 1200, 1200, 1200, 700, 1300, 1300, 80, 80}
			for range 4 {
				for _, n := range sizes {
					p := bytes.Repeat([]byte{byte(len(want))}, n)
					p[0] = byte(len(want) >> 8)
					want = append(want, p)
				}
			}
			s := a.state.Load().v4
			if netip.MustParseAddr(ip).Is6() {
				s = a.state.Load().v6
			}
			before := s.sent.Load()
			if err := a.Send(want, epB); err != nil {
				t.Fatal(err)
			}
			if s.gso.Load() {
				// Runs: 1200×5+700, 1300×2+80, 80, four times over.
				if got := s.sent.Load() - before; got != 12 {
					t.Errorf("%d datagrams in %d messages, want 12 GSO bursts", len(want), got)
				}
			}
			got, eps, calls := receiveN(t, recvB, 7, len(want))
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("message %d: %d bytes starting %v, want %d bytes starting %v", i, len(got[i]), got[i][:2], len(want[i]), want[i][:2])
				}
				if ap := eps[i].(*OffloadEndpoint).AddrPort(); ap != from {
					t.Fatalf("message %d from %s, want %s", i, ap, from)
				}
			}
			if calls < len(want)/7 {
				t.Errorf("%d messages in %d receive calls of 7", len(want), calls)
			}
			rs := b.state.Load().v4
			if netip.MustParseAddr(ip).Is6() {
				rs = b.state.Load().v6
			}
			if s.gso.Load() && rs.gro && rs.coalesced.Load() == 0 {
				t.Error("GSO bursts over loopback to a GRO socket arrived one datagram per read")
			}
			if eps[0] != eps[len(eps)-1] {
				t.Error("every datagram from one address got its own endpoint: the cache does not work")
			}
		})
	}
}

// openOffloadWithPeer opens an OffloadBind and a plain UDP socket on
// 127.0.0.1 to talk to it, both closed at the test's end.
func openOffloadWithPeer(t *testing.T) (*OffloadBind, []conn.ReceiveFunc, uint16, *net.UDPConn) {
	t.Helper()
	b := NewOffloadBind()
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return b, fns, port, peer
}

// TestOffloadBindStickySource: a datagram to one of the host's addresses
// is answered from that address, not the one the kernel would pick.
func TestOffloadBindStickySource(t *testing.T) {
	b, fns, port, peer := openOffloadWithPeer(t)
	// 127.0.0.2 is the host's too (all of 127/8 is loopback); a reply the
	// kernel routes to 127.0.0.1 would leave from 127.0.0.1.
	if _, err := peer.WriteToUDP([]byte("ping"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: int(port)}); err != nil {
		t.Fatal(err)
	}
	_, eps, _ := receiveN(t, fns[0], 4, 1)
	ep := eps[0].(*OffloadEndpoint)
	if ep.SrcIP() != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("recorded local address %s, want 127.0.0.2", ep.SrcIP())
	}
	if err := b.Send([][]byte{[]byte("pong")}, ep); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, src, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "pong" || src != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port) {
		t.Fatalf("reply %q from %s, want \"pong\" from 127.0.0.2:%d", buf[:n], src, port)
	}
	// An endpoint parsed from configuration has no source: the kernel picks.
	cfg, _ := b.ParseEndpoint(fmt.Sprintf("127.0.0.1:%d", peer.LocalAddr().(*net.UDPAddr).Port))
	if err := b.Send([][]byte{[]byte("hello")}, cfg); err != nil {
		t.Fatal(err)
	}
	if n, _, err = peer.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("datagram to a configured endpoint: %q, %v", buf[:n], err)
	}
}

// TestOffloadBindGoneSource: when the local address an endpoint recorded
// is no longer the host's, Send still delivers, from whatever the kernel picks.
func TestOffloadBindGoneSource(t *testing.T) {
	b, _, _, peer := openOffloadWithPeer(t)
	ep := &OffloadEndpoint{dst: peer.LocalAddr().(*net.UDPAddr).AddrPort(), src: netip.MustParseAddr("192.0.2.77")}
	if err := b.Send([][]byte{[]byte("a"), []byte("b")}, ep); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for _, want := range []string{"a", "b"} {
		n, _, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("got %q, %v; want %q", buf[:n], err, want)
		}
	}
}
