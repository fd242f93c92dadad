//go:build !race

package wireguard

import (
	"testing"

	"golang.zx2c4.com/wireguard/conn"
)

// TestOffloadBindAllocs: Send does not allocate, and receiving a GSO burst
// costs x/net's address of its one coalesced datagram, not one per datagram.
func TestOffloadBindAllocs(t *testing.T) {
	a, b, recvB, epB, _ := openOffloadPair(t, "127.0.0.1")
	if !a.state.Load().v4.gso.Load() || !b.state.Load().v4.gro {
		t.Skip("no UDP GSO or GRO here")
	}
	out := make([][]byte, 32)
	for i := range out {
		out[i] = make([]byte, 1200)
	}
	if n := testing.AllocsPerRun(100, func() { a.Send(out, epB) }); n != 0 {
		t.Errorf("Send allocates %.1f times per burst", n)
	}
	// Drain what that sent, then measure a burst's receive.
	bufs := make([][]byte, 128)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16)
	}
	sizes, eps := make([]int, 128), make([]conn.Endpoint, 128)
	total := 101 * len(out)
	for got := 0; got < total; {
		n, err := recvB(bufs, sizes, eps)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	allocs := testing.AllocsPerRun(100, func() {
		a.Send(out, epB)
		for got := 0; got < len(out); {
			n, _ := recvB(bufs, sizes, eps)
			got += n
		}
	})
	if allocs > 2 {
		t.Errorf("sending and receiving a burst of %d allocates %.1f times, want at most 2 (x/net's address)", len(out), allocs)
	}
}
