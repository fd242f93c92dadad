package agent

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/transport/heartbeat"
)

// TestFailbackReturnsToTheHomeEdge: an agent that failed over from its home
// edge moves its traffic back only once the home edge's heartbeats have
// been answered for failbackHold without a miss, never while they fail or
// soon after they failed; the move is one swap, after which a probe goes to
// each edge at once, saying which one is now the standby.
func TestFailbackReturnsToTheHomeEdge(t *testing.T) {
	e1, e2 := testEdge("edge-1", 1, 0), testEdge("edge-2", 2, 1)
	ipc := &fakeIPC{}
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil))
	l := &link{wg: &wgDevice{ipc: ipc}, log: log}
	var mu sync.Mutex
	probes := map[netip.Addr][]heartbeat.Message{} // by the edge address they went to
	inject := func(pkt []byte) {
		m, ok := heartbeat.ParsePacket(pkt)
		if !ok {
			t.Errorf("injected a packet that is no probe: %x", pkt)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		dst := netip.AddrFrom4([4]byte(pkt[16:20]))
		probes[dst] = append(probes[dst], m)
	}
	mk := func(e model.ClusterEdge) *beat {
		b := makeBeat(log, t.TempDir(), heartbeatConfig{noSocket: true, inject: inject}, nil, heartbeat.Port)
		b.aim(netip.MustParseAddr("192.0.2.10"), e.Heartbeat)
		b.setEdgeKey(e.PublicKey)
		t.Cleanup(b.Close)
		return b
	}
	h := &hostTunnel{link: l, log: log, onSwap: func(*beat) {}, home: e1.PublicKey}
	h.beats = []*beat{mk(e1), mk(e2)}
	h.pair = []model.ClusterEdge{e1, e2}
	// The agent is on edge-2 after a failover.
	if err := l.setEdge(model.EdgePeer{}, h.pair, 1, nil); err != nil {
		t.Fatal(err)
	}
	h.on = 1
	h.beats[0].setStandby(true)

	// answered sends a probe at `at` and takes its reply; silent only sends one.
	answered := func(b *beat, at time.Time) {
		b.tick(at)
		b.mu.Lock()
		seq := b.seq
		b.mu.Unlock()
		b.gotReply(heartbeat.Message{Type: heartbeat.Reply, Seq: seq})
		b.tick(at) // health is judged at the tick
	}
	silent := func(b *beat, at time.Time, n int) {
		for range n {
			b.tick(at)
		}
	}
	sets := func() int { return len(ipc.sets) }
	base := sets()

	now := time.Now()
	answered(h.beats[1], now.Add(-10*time.Second))
	h.failback()
	if h.on != 1 || sets() != base {
		t.Fatal("moved back to a home edge that never answered")
	}
	answered(h.beats[0], now.Add(-failbackHold/2))
	h.failback()
	if h.on != 1 || sets() != base {
		t.Fatalf("moved back to a home edge healthy for %v, under the hold of %v", failbackHold/2, failbackHold)
	}
	// It fails, then answers again: the hold starts over.
	silent(h.beats[0], now.Add(-failbackHold/2), heartbeat.DefaultMultiplier+1)
	if h.beats[0].isHealthy() {
		t.Fatal("the home edge's beat is healthy after missed probes")
	}
	h.failback()
	if h.on != 1 {
		t.Fatal("moved back to a home edge whose beat fails")
	}
	answered(h.beats[0], now.Add(-200*time.Millisecond))
	h.failback()
	if h.on != 1 || sets() != base {
		t.Fatal("moved back to a home edge that failed within the hold")
	}

	// Healthy for the whole hold: back to edge-1 in one IpcSet, then a
	// probe to each edge with the new standby flags.
	h.beats[0].mu.Lock()
	h.beats[0].healthySince = time.Now().Add(-failbackHold)
	h.beats[0].mu.Unlock()
	mu.Lock()
	clear(probes)
	mu.Unlock()
	h.failback()
	if h.on != 0 || sets() != base+1 || h.activeEdge() != "edge-1" {
		t.Fatalf("after the hold: active %q after %d IpcSets; want edge-1 after one", h.activeEdge(), sets()-base)
	}
	if got := allowed(ipc.sets); !slices.Contains(got[1], "0.0.0.0/0") || slices.Contains(got[2], "0.0.0.0/0") {
		t.Errorf("AllowedIPs after the failback: %v", got)
	}
	mu.Lock()
	p1, p2 := probes[e1.Heartbeat], probes[e2.Heartbeat]
	mu.Unlock()
	if len(p1) != 1 || len(p2) != 1 || p1[0].Flags&heartbeat.Standby != 0 || p2[0].Flags&heartbeat.Standby == 0 {
		t.Errorf("probes right after the failback: to edge-1 %+v, to edge-2 %+v; want one each, edge-2's saying standby", p1, p2)
	}
	if !strings.Contains(logged.String(), "the traffic moved back to it") || !strings.Contains(logged.String(), "from=edge-2 to=edge-1") {
		t.Errorf("the log does not say so:\n%s", logged.String())
	}
	h.failback()
	if sets() != base+1 {
		t.Error("a failback to the edge that is already active swapped again")
	}
}
