package agent

import (
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// testEdge is an edge of a cluster whose key is 32 bytes of b.
func testEdge(name string, b byte, i int) model.ClusterEdge {
	return model.ClusterEdge{Name: name, Endpoint: "192.0.2." + string(rune('0'+b)) + ":51820",
		PublicKey: base64.StdEncoding.EncodeToString(slices.Repeat([]byte{b}, 32)),
		Heartbeat: model.EdgeOwnAddress(model.DefaultOverlayRange, i), Heartbeat6: model.EdgeOwnAddress6(i)}
}

func TestPickEdges(t *testing.T) {
	e1, e2, e3 := testEdge("edge-1", 1, 0), testEdge("edge-2", 2, 1), testEdge("edge-3", 3, 2)
	old := e2
	old.Heartbeat, old.Heartbeat6 = netip.Addr{}, netip.Addr{} // registered before edges had addresses of their own
	for _, tc := range []struct {
		name  string
		edges []model.ClusterEdge
		n     int
		home  string
		want  []string
	}{
		{"a single edge", nil, 2, "", nil},
		{"two edges", []model.ClusterEdge{e1, e2}, 2, "", []string{"edge-1", "edge-2"}},
		{"the first two, in the order given", []model.ClusterEdge{e3, e1, e2}, 2, "", []string{"edge-3", "edge-1"}},
		{"three when asked", []model.ClusterEdge{e3, e1, e2}, 3, "", []string{"edge-3", "edge-1", "edge-2"}},
		{"--edges 1 opts out", []model.ClusterEdge{e1, e2}, 1, "", nil},
		{"an edge without addresses of its own is skipped", []model.ClusterEdge{e1, old, e3}, 2, "", []string{"edge-1", "edge-3"}},
		{"no second edge to probe", []model.ClusterEdge{e1, old}, 2, "", nil},
		{"the home edge first, wherever it is listed", []model.ClusterEdge{e2, e3, e1}, 2, e1.PublicKey, []string{"edge-1", "edge-2"}},
		{"the home edge once", []model.ClusterEdge{e1, e2, e3}, 2, e1.PublicKey, []string{"edge-1", "edge-2"}},
		{"a home edge not listed", []model.ClusterEdge{e2, e3}, 2, e1.PublicKey, []string{"edge-2", "edge-3"}},
		{"a home edge without addresses of its own", []model.ClusterEdge{e1, old, e3}, 2, old.PublicKey, []string{"edge-1", "edge-3"}},
		{"no pair with the home edge alone", []model.ClusterEdge{e1}, 2, e1.PublicKey, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range pickEdges(model.EdgePeer{Endpoint: "192.0.2.1:51820", Edges: tc.edges}, tc.n, tc.home) {
				got = append(got, e.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("pickEdges = %q, want %q", got, tc.want)
			}
		})
	}
	// A new list keeps the active edge where it still is.
	if i := keepActive([]model.ClusterEdge{e1, e2}, 1, []model.ClusterEdge{e3, e2}); i != 1 {
		t.Errorf("keepActive = %d, want 1 (edge-2 stays active)", i)
	}
	if i := keepActive([]model.ClusterEdge{e1, e2}, 1, []model.ClusterEdge{e1, e3}); i != 0 {
		t.Errorf("keepActive of a gone edge = %d, want 0", i)
	}
}

// fakeIPC records what is set, as wireguard-go's UAPI takes it.
type fakeIPC struct {
	mu   sync.Mutex
	sets []string
}

func (f *fakeIPC) IpcSet(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets = append(f.sets, s)
	return nil
}

func (f *fakeIPC) IpcGet() (string, error) { return "", nil }

// allowed reads, from UAPI text, the AllowedIPs each peer (by its edge's
// key byte) ends up with, applied in order as wireguard-go does: a
// prefix inserted for one peer leaves any other.
func allowed(sets []string) map[byte][]string {
	out := map[byte][]string{}
	var cur byte
	for _, s := range sets {
		for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
			k, v, _ := strings.Cut(line, "=")
			switch k {
			case "replace_peers":
				clear(out)
			case "public_key":
				b, _ := hex.DecodeString(v)
				cur = b[0]
			case "replace_allowed_ips":
				out[cur] = nil
			case "allowed_ip":
				for p, ips := range out {
					out[p] = slices.DeleteFunc(ips, func(s string) bool { return s == v })
				}
				out[cur] = append(out[cur], v)
			case "remove":
				delete(out, cur)
			}
		}
	}
	return out
}

// TestSwapMovesTheAllowedIPs: with two edges, the active peer holds
// everything and the standby its edge's own heartbeat addresses; a swap is
// one IpcSet that turns that around, and restarting one edge's session
// keeps each peer's role.
func TestSwapMovesTheAllowedIPs(t *testing.T) {
	e1, e2 := testEdge("edge-1", 1, 0), testEdge("edge-2", 2, 1)
	ipc := &fakeIPC{}
	d := &wgDevice{ipc: ipc}
	everything := []string{"0.0.0.0/0", "::/0"}
	own2 := []string{"100.111.255.253/32", "fd00:5359:6564:6765::3/128"}
	own1 := []string{"100.111.255.254/32", "fd00:5359:6564:6765::2/128"}
	check := func(what string, want map[byte][]string) {
		t.Helper()
		if got := allowed(ipc.sets); len(got) != 2 || !slices.Equal(got[1], want[1]) || !slices.Equal(got[2], want[2]) {
			t.Fatalf("%s: AllowedIPs %v, want %v", what, got, want)
		}
	}

	if err := d.setPair([]model.ClusterEdge{e1, e2}, 0); err != nil {
		t.Fatal(err)
	}
	check("edge-1 active", map[byte][]string{1: everything, 2: own2})
	if !strings.Contains(ipc.sets[0], "endpoint=192.0.2.2:51820\npersistent_keepalive_interval=1\n") {
		t.Errorf("the standby peer has no endpoint or keepalive:\n%s", ipc.sets[0])
	}
	if err := d.setPair([]model.ClusterEdge{e1, e2}, 0); err != nil || len(ipc.sets) != 1 {
		t.Fatalf("the same pair again: %v, %d IpcSets; want none more", err, len(ipc.sets))
	}

	if err := d.swap(1); err != nil {
		t.Fatal(err)
	}
	if len(ipc.sets) != 2 {
		t.Fatalf("the swap took %d IpcSets, want one", len(ipc.sets)-1)
	}
	if strings.Contains(ipc.sets[1], "replace_peers") || strings.Contains(ipc.sets[1], "endpoint") {
		t.Errorf("the swap touched more than AllowedIPs:\n%s", ipc.sets[1])
	}
	// Never a moment with no peer for everything: the new active one is set first.
	if first, _, _ := strings.Cut(ipc.sets[1], "replace_allowed_ips"); !strings.Contains(first, hex.EncodeToString(slices.Repeat([]byte{2}, 32))) {
		t.Errorf("the swap set the old active peer first:\n%s", ipc.sets[1])
	}
	check("edge-2 active", map[byte][]string{1: own1, 2: everything})

	if err := d.restartPeer(0); err != nil {
		t.Fatal(err)
	}
	check("after restarting edge-1's session", map[byte][]string{1: own1, 2: everything})
	if err := d.swap(1); err != nil || len(ipc.sets) != 3 {
		t.Fatalf("a swap to the active edge: %v, %d IpcSets; want none", err, len(ipc.sets))
	}
}

// TestFailoverSwapsOnTheActiveEdgesSilence: the agent moves its traffic
// only when the active edge's heartbeats fail while the standby's answer,
// logs it, and its probes then say which session is the standby one.
func TestFailoverSwapsOnTheActiveEdgesSilence(t *testing.T) {
	e1, e2 := testEdge("edge-1", 1, 0), testEdge("edge-2", 2, 1)
	ipc := &fakeIPC{}
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil))
	l := &link{wg: &wgDevice{ipc: ipc}, log: log}
	mk := func() *beat {
		b := makeBeat(log, t.TempDir(), heartbeatConfig{}, nil, 0)
		t.Cleanup(b.Close)
		return b
	}
	h := &hostTunnel{link: l, log: log, onSwap: func(*beat) {}}
	h.beats = []*beat{mk(), mk()}
	if err := l.setEdge(model.EdgePeer{}, []model.ClusterEdge{e1, e2}, 0, nil); err != nil {
		t.Fatal(err)
	}
	h.pair = []model.ClusterEdge{e1, e2}
	h.beats[1].setStandby(true)
	setHealthy := func(b *beat, v bool) { b.mu.Lock(); b.healthy, b.everHealthy = v, b.everHealthy || v; b.mu.Unlock() }

	// At the start, a standby whose handshake completed first takes over
	// nothing while the first edge has its grace.
	h.pairSince = time.Now()
	setHealthy(h.beats[1], true)
	h.failover()
	if h.on != 0 {
		t.Fatal("swapped to the standby before the active edge had its first chance")
	}
	h.pairSince = time.Time{}

	setHealthy(h.beats[0], true)
	setHealthy(h.beats[1], true)
	h.failover()
	if h.on != 0 || len(ipc.sets) != 1 {
		t.Fatalf("both edges answer: active %d after %d IpcSets; want 0 after the first", h.on, len(ipc.sets))
	}
	setHealthy(h.beats[0], false)
	setHealthy(h.beats[1], false)
	h.failover()
	if h.on != 0 {
		t.Fatal("swapped to a standby edge that does not answer either")
	}
	setHealthy(h.beats[1], true)
	h.failover()
	if h.on != 1 || len(ipc.sets) != 2 || h.activeEdge() != "edge-2" {
		t.Fatalf("the active edge is silent, the standby answers: active %q after %d IpcSets; want edge-2 after one more", h.activeEdge(), len(ipc.sets))
	}
	if got := allowed(ipc.sets); !slices.Contains(got[2], "0.0.0.0/0") || slices.Contains(got[1], "0.0.0.0/0") {
		t.Errorf("AllowedIPs after the failover: %v", got)
	}
	if !h.beats[0].standby || h.beats[1].standby {
		t.Errorf("standby flags after the failover: edge-1 %v, edge-2 %v", h.beats[0].standby, h.beats[1].standby)
	}
	if !strings.Contains(logged.String(), "the traffic moved to the standby edge") || !strings.Contains(logged.String(), "to=edge-2") {
		t.Errorf("the log does not say so:\n%s", logged.String())
	}
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
