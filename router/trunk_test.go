package router

import (
	"sync"
	"testing"
)

// TestTrunkFlowsNameTheirEdges: a flow that leaves for a session another
// edge holds starts with that Remote peer (whose Edge names the far edge) as
// its destination; a flow that arrives over a trunk records the edge it came
// from in Via; a flow between two local sessions has neither.
func TestTrunkFlowsNameTheirEdges(t *testing.T) {
	var mu sync.Mutex
	var events []FlowEvent
	r := New(Config{ICMPSource4: mpa("100.96.0.1"), OnFlow: func(ev FlowEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}})
	tunA, tunB, tunC := TunnelID{1}, TunnelID{2}, TunnelID{3}
	mk := func(name string, tun TunnelID, edge string) *Peer {
		p := &Peer{Name: name, Kind: Connector, Tunnel: tun, Remote: edge != "", Edge: edge}
		p.SetUp(true)
		p.SetActive(true)
		return p
	}
	a, b, c := mk("a", tunA, ""), mk("b", tunB, "edge-2"), mk("c", tunC, "")
	tb := NewTableBuilder()
	tb.AddRoute(0, mpp("192.0.2.0/24"), tunA)
	tb.AddRoute(0, mpp("198.51.100.0/24"), tunB)
	tb.AddRoute(0, mpp("203.0.113.0/24"), tunC)
	for _, p := range []*Peer{a, b, c} {
		tb.AddReplica(p)
	}
	r.SetTable(tb.Build())
	icmp := make([]byte, IcmpBufSize)
	last := func() FlowEvent {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(events) == 0 {
			t.Fatal("no flow event")
		}
		return events[len(events)-1]
	}

	if d := r.Route(a, udp("192.0.2.10", "198.51.100.10", 64), icmp); d.Verdict != Forward || d.To != b {
		t.Fatalf("a to b's site: %+v, want forwarded to b's remote session", d)
	}
	if m := last().Flow.Meta; m.To != b || !m.To.Remote || m.To.Edge != "edge-2" || m.Via != "" {
		t.Fatalf("flow onto the trunk: to %+v via %q, want b's remote session on edge-2 and no via", m.To, m.Via)
	}
	if d := r.RouteTrunk(0, udp("198.51.100.11", "203.0.113.10", 63), "edge-2", true, icmp); d.Verdict != Forward || d.To != c {
		t.Fatalf("from the trunk to c's site: %+v, want forwarded to c", d)
	}
	if m := last().Flow.Meta; m.Via != "edge-2" || m.To != c {
		t.Fatalf("flow off the trunk: to %+v via %q, want c via edge-2", m.To, m.Via)
	}
	if d := r.Route(c, udp("203.0.113.11", "192.0.2.11", 64), icmp); d.Verdict != Forward || d.To != a {
		t.Fatalf("c to a's site: %+v", d)
	}
	if m := last().Flow.Meta; m.Via != "" || m.To.Remote || m.To.Edge != "" {
		t.Fatalf("a flow on one edge: to %+v via %q, want neither edge", m.To, m.Via)
	}
	mu.Lock()
	n := len(events)
	mu.Unlock()
	if n != 3 {
		t.Fatalf("%d flow events, want 3 starts", n)
	}
}
