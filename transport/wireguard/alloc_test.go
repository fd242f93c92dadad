//go:build !race

package wireguard

import "testing"

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
