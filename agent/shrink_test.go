package agent

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard/switchyard/transport/heartbeat"
)

// TestPaddedProbesNoticeAShrunkPath drives a beat on a MASQUE session of
// inner MTU 1399: every bigEvery-th probe goes into the session padded to
// 1399 bytes, the others as usual. When the path loses the padded ones but
// carries the small ones, the third lost in a row makes the beat report
// the shrink (once); padded probes answered, or a path that carries
// nothing (heartbeats fail: not the size), report nothing.
func TestPaddedProbesNoticeAShrunkPath(t *testing.T) {
	for _, tc := range []struct {
		name         string
		mtu          int
		small, big   bool // the path carries small probes, padded ones
		wantShrankAt int  // the probe (seq) at which shrank is called; 0: never
		wantPadded   int
	}{
		{"path shrank", 1399, true, false, 4 * bigEvery, 4}, // then no session (the link redials)
		{"path carries full size", 1399, true, true, 0, 8},
		{"path dead", 1399, false, false, 0, 8},
		{"no session", 0, true, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out []uint32 // probes the path carried, to answer after the tick
			var padded, shrankAt, shrankMTU int
			var b *beat
			mtu := tc.mtu
			carry := func(pkt []byte, ok bool) {
				m, isProbe := heartbeat.ParsePacket(pkt)
				if !isProbe {
					t.Fatalf("sent a packet that is no probe: % x", pkt[:min(len(pkt), 40)])
				}
				if ok {
					out = append(out, m.Seq)
				}
			}
			hc := heartbeatConfig{noSocket: true,
				inject: func(pkt []byte) { carry(pkt, tc.small) },
				big: bigProbes{
					mtu: func() int { return mtu },
					write: func(pkt []byte) {
						if len(pkt) != tc.mtu {
							t.Errorf("padded probe of %d bytes, want %d", len(pkt), tc.mtu)
						}
						padded++
						carry(pkt, tc.big)
					},
					shrank: func(m int) {
						if shrankAt != 0 {
							t.Errorf("shrank called again at probe %d", b.seq)
						}
						shrankAt, shrankMTU = int(b.seq), m
						mtu = 0 // the session is closed
					},
				}}
			b = makeBeat(slog.New(slog.DiscardHandler), t.TempDir(), hc, nil, heartbeat.Port)
			t.Cleanup(b.Close)
			b.aim(netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("100.96.0.1"))
			now := time.Now()
			for i := range 8 * bigEvery {
				b.tick(now.Add(time.Duration(i) * heartbeat.DefaultInterval))
				for _, seq := range out {
					b.gotReply(heartbeat.Message{Type: heartbeat.Reply, Seq: seq})
				}
				out = out[:0]
			}
			if padded != tc.wantPadded {
				t.Errorf("%d padded probes in %d, want %d", padded, 8*bigEvery, tc.wantPadded)
			}
			if shrankAt != tc.wantShrankAt {
				t.Errorf("shrank called at probe %d, want %d (0: never)", shrankAt, tc.wantShrankAt)
			}
			if tc.wantShrankAt != 0 && shrankMTU != tc.mtu {
				t.Errorf("shrank reported MTU %d, want %d", shrankMTU, tc.mtu)
			}
		})
	}
}
