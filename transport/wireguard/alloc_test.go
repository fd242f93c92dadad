//go:build !race

package wireguard

import "testing"

// TestZeroAllocs: encrypting and sending a batch, then receiving,
// decrypting and forwarding it (decrypt + encrypt, the hub's path) does not
// allocate.
func TestZeroAllocs(t *testing.T) {
	fwd := &forwarder{bufs: make([][]byte, 0, 128)}
	a, b, ba, bb, sa, _ := connectedCapPair(t, ReceiverFunc(func([]Packet) {}), fwd)
	fwd.e = b
	rx := b.newRxBatch(128)
	ba.sink = rx
	bb.drop = true
	pkt := ipv4Packet(1420)
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+len(pkt), MaxMessageSize)
	}
	run := func() {
		for i := range bufs {
			copy(bufs[i][Headroom:], pkt)
		}
		ba.sinkN = 0
		if err := a.Send(sa, bufs, Headroom); err != nil {
			t.Fatal(err)
		}
		b.processBatch(rx, ba.sinkN)
	}
	run()
	if got := b.Peer(a.PublicKey()).Stats().RxPackets; got != 64 {
		t.Fatalf("forwarded %d packets, want 64", got)
	}
	if n := testing.AllocsPerRun(50, run); n != 0 {
		t.Fatalf("%v allocations per batch of 64, want 0", n)
	}
}
