//go:build !race

package wireguard

import (
	"testing"

	"golang.zx2c4.com/wireguard/conn"
)

// TestZeroAllocs: encrypting and sending a batch, then receiving,
// decrypting and forwarding it (decrypt + encrypt, the hub's path) does not
// allocate.
func TestZeroAllocs(t *testing.T) {
	h := newHubPipeline(t, 64)
	run := func() {
		h.send(t)
		h.process()
	}
	run()
	if got := h.hub.Peer(h.a.PublicKey()).Stats().RxPackets; got != 64 {
		t.Fatalf("forwarded %d packets, want 64", got)
	}
	if n := testing.AllocsPerRun(50, run); n != 0 {
		t.Fatalf("%v allocations per batch of 64, want 0", n)
	}
}

// nopBind is a conn.Bind whose Send does nothing.
type nopBind struct{ conn.Bind }

func (nopBind) Send([][]byte, conn.Endpoint) error { return nil }

// TestProbeBindSendAllocs: a data Send through a ProbeBind (its read lock)
// does not allocate.
func TestProbeBindSendAllocs(t *testing.T) {
	b := &ProbeBind{Bind: nopBind{}}
	bufs := [][]byte{make([]byte, 1400)}
	ep := &conn.StdNetEndpoint{}
	if n := testing.AllocsPerRun(100, func() { b.Send(bufs, ep) }); n != 0 {
		t.Fatalf("%v allocations per Send, want 0", n)
	}
}
