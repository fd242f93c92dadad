package edge

import (
	"testing"

	"github.com/switchyard/switchyard/transport/wireguard"
)

// TestSendGroups checks that a batch interleaving sessions leaves as one
// group per session, each in arrival order, and that a session whose group
// is too far back starts a later one rather than jumping ahead.
func TestSendGroups(t *testing.T) {
	sess := make([]*wireguard.Session, groupScan+2)
	for i := range sess {
		sess[i] = new(wireguard.Session)
	}
	bufs := make([][]byte, 256)
	for i := range bufs {
		bufs[i] = []byte{byte(i)}
	}
	pkt := func(i int) []byte { return bufs[i] }
	var b batch
	for round := 0; round < 2; round++ { // the second reuses the first's slices
		// data A→B interleaved with ACKs B→A: two groups.
		for i := range 10 {
			b.add(sess[i%2], pkt(i))
		}
		if len(b.groups) != 2 {
			t.Fatalf("round %d: %d groups for 2 sessions, want 2", round, len(b.groups))
		}
		for g, want := range [][]byte{{0, 2, 4, 6, 8}, {1, 3, 5, 7, 9}} {
			if b.groups[g].s != sess[g] || len(b.groups[g].bufs) != len(want) {
				t.Fatalf("round %d: group %d has %d packets, want %d", round, g, len(b.groups[g].bufs), len(want))
			}
			for k, w := range want {
				if got := b.groups[g].bufs[k][0]; got != w {
					t.Errorf("round %d: group %d packet %d is %d, want %d", round, g, k, got, w)
				}
			}
		}
		// groupScan more sessions push session 0's group out of reach:
		// its next packet starts a new group, sent after the old one.
		for i := 2; i < len(sess); i++ {
			b.add(sess[i], pkt(100+i))
		}
		b.add(sess[0], pkt(200))
		last := b.groups[len(b.groups)-1]
		if last.s != sess[0] || len(last.bufs) != 1 || last.bufs[0][0] != 200 {
			t.Errorf("round %d: a session out of the scan window joined an old group", round)
		}
		for i := range b.groups {
			clear(b.groups[i].bufs)
			b.groups[i].s, b.groups[i].bufs = nil, b.groups[i].bufs[:0]
		}
		b.groups = b.groups[:0]
	}
	if n := testing.AllocsPerRun(100, func() {
		for i := range 64 {
			b.add(sess[i%3], pkt(i))
		}
		for i := range b.groups {
			b.groups[i].s, b.groups[i].bufs = nil, b.groups[i].bufs[:0]
		}
		b.groups = b.groups[:0]
	}); n != 0 {
		t.Errorf("add allocates %.1f times per batch once warm", n)
	}
}
