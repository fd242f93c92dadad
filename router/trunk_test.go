package router

import (
	"bytes"
	"sync"
	"testing"
)

// trunkLab is the far edge's view: the lab's sessions are local, and site D
// (10.4.0.0/16, vnet 0) and a device 100.96.0.9 are held by another edge.
type trunkLab struct {
	*lab
	siteD, phone *Peer
	tunD         TunnelID
}

func newTrunkLab(t *testing.T) *trunkLab {
	l := &trunkLab{lab: newLab(t), tunD: TunnelID{4}}
	l.siteD = &Peer{Name: "D", Kind: Connector, Tunnel: l.tunD, Remote: true}
	l.phone = &Peer{Name: "phone", Kind: Client, Overlay: mpa("100.96.0.9"), Device: [16]byte{9}, Remote: true}
	for _, p := range []*Peer{l.siteD, l.phone} {
		p.SetUp(true)
		p.SetActive(true)
	}
	b := NewTableBuilder()
	b.AddRoute(0, mpp("10.1.0.0/16"), l.tunA)
	b.AddRoute(1, mpp("10.1.0.0/16"), l.tunB)
	b.AddRoute(0, mpp("10.3.0.0/16"), l.tunC)
	b.AddRoute(0, mpp("10.4.0.0/16"), l.tunD)
	for _, p := range []*Peer{l.siteA, l.siteA2, l.siteB, l.siteC, l.siteD} {
		b.AddReplica(p)
	}
	b.AddClient(l.laptop)
	b.AddClient(l.phone)
	l.r.SetTable(b.Build())
	return l
}

func TestRouteTrunk(t *testing.T) {
	l := newTrunkLab(t)
	tests := []struct {
		name    string
		vnet    uint32
		pkt     []byte
		applied bool
		to      *Peer
		reason  Reason // when to is nil
	}{
		{"remote site to a local site", 0, udp("10.4.0.5", "10.1.2.3", 63), true, l.siteA, 0},
		{"remote device to a local site", 0, udp("100.96.0.9", "10.3.0.5", 63), true, l.siteC, 0},
		{"remote site to a local device", 0, udp("10.4.0.5", "100.96.0.7", 63), true, l.laptop, 0},
		{"the vnet decides: a vnet-0 source in vnet 1", 1, udp("10.4.0.5", "10.1.2.3", 63), true, nil, ReasonSpoofed},
		{"vnet isolation: site B to a vnet-0 site", 1, udp("10.1.9.9", "10.3.0.5", 63), true, nil, ReasonNoRoute},
		{"no transit: to a session another edge holds", 0, udp("10.3.0.5", "10.4.0.7", 63), true, nil, ReasonTransit},
		{"no transit: to another edge's device", 0, udp("10.4.0.5", "100.96.0.9", 63), true, nil, ReasonTransit},
		{"a source no party may send from", 0, udp("10.9.0.5", "10.1.2.3", 63), true, nil, ReasonSpoofed},
		{"a device address nobody holds", 0, udp("100.96.0.8", "10.1.2.3", 63), true, nil, ReasonSpoofed},
		{"the edge's own address as source", 0, udp("100.96.0.1", "10.1.2.3", 63), true, nil, ReasonSpoofed},
		{"to the edge's own address", 0, udp("10.4.0.5", "100.96.0.1", 63), true, nil, ReasonNoRoute},
		{"unrouted", 0, udp("10.4.0.5", "198.51.100.1", 63), true, nil, ReasonNoRoute},
		{"a vnet this edge does not have", 7, udp("10.4.0.5", "10.1.2.3", 63), true, nil, ReasonNoVNet},
		{"loop back to the sender's tunnel", 0, udp("10.1.2.3", "10.1.7.7", 63), true, nil, ReasonLoop},
		{"malformed", 0, []byte{0x45, 0, 0}, true, nil, ReasonMalformed},
		{"link-local", 0, udp("10.4.0.5", "169.254.1.1", 63), true, nil, ReasonLinkLocal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := bytes.Clone(tc.pkt)
			before := l.r.Dropped(tc.reason)
			d := l.r.RouteTrunk(tc.vnet, tc.pkt, "edge-2", tc.applied)
			if tc.to != nil {
				if d.Verdict != Forward || d.To != tc.to {
					t.Fatalf("RouteTrunk = verdict %d to %v (reason %v), want Forward to %v", d.Verdict, name(d.To), d.Reason, name(tc.to))
				}
				// One hop: the ingress edge decremented the TTL; the far edge
				// changes nothing, the true source included.
				if !bytes.Equal(tc.pkt, orig) {
					t.Fatalf("the far edge changed the packet:\n got %x\nwant %x", tc.pkt, orig)
				}
				return
			}
			if d.Verdict != Drop || d.Reason != tc.reason || d.Reply != nil {
				t.Fatalf("RouteTrunk = verdict %d to %v reason %v reply %d bytes, want a silent drop for %v",
					d.Verdict, name(d.To), d.Reason, len(d.Reply), tc.reason)
			}
			if got := l.r.Dropped(tc.reason) - before; got != 1 {
				t.Fatalf("%v drops grew by %d, want 1", tc.reason, got)
			}
		})
	}
}

// TestRouteTrunkPolicyOnce checks that policy is evaluated once: a packet the
// ingress edge allowed passes a far edge whose rules would block it (and
// its replies, judged first at the far edge, match the flow), while one
// that says no policy was applied is judged here, and its block is never
// answered across the trunk.
func TestRouteTrunkPolicyOnce(t *testing.T) {
	l := newTrunkLab(t)
	l.setRules(t, 1, true, blockTo("10.1.2.3", false), blockTo("10.4.0.5", false))
	icmp := make([]byte, IcmpBufSize)

	syn := tcp("10.4.0.5", "10.1.2.3", 40000, 22, tcpSYN, 1000)
	if d := l.r.RouteTrunk(0, syn, "edge-2", true); d.Verdict != Forward || d.To != l.siteA {
		t.Fatalf("SYN the ingress edge allowed: %+v, want Forward to A", d)
	}
	// The reply goes back out over the trunk: Route hands it to site D's
	// remote session, through the flow the trunk packet recorded, not
	// through the rule that blocks 10.4.0.5 here.
	synAck := tcp("10.1.2.3", "10.4.0.5", 22, 40000, tcpSYN|tcpACK, 5000)
	if d := l.r.Route(l.siteA, synAck, icmp); d.Verdict != Forward || d.To != l.siteD {
		t.Fatalf("reply to a flow admitted over the trunk: %+v, want Forward to D", d)
	}

	replied := l.r.Stats().Replied
	other := tcp("10.4.0.5", "10.1.2.3", 40001, 22, tcpSYN, 1000)
	d := l.r.RouteTrunk(0, other, "edge-2", false)
	if d.Verdict != Drop || d.Reason != ReasonPolicy || d.Reply != nil {
		t.Fatalf("SYN not yet judged, blocked here: %+v, want a silent policy drop", d)
	}
	if got := l.r.Stats().Replied; got != replied {
		t.Fatalf("replies counter moved from %d to %d for a block that was not answered", replied, got)
	}
}

func TestRouteTrunkDoesNotAllocate(t *testing.T) {
	l := newTrunkLab(t)
	pkt := tcp("10.4.0.5", "10.1.2.3", 40000, 22, tcpACK, 1000)
	l.r.RouteTrunk(0, pkt, "edge-2", true) // the flow's first packet allocates its entry
	allocs := testing.AllocsPerRun(1000, func() {
		if d := l.r.RouteTrunk(0, pkt, "edge-2", true); d.Verdict != Forward {
			t.Fatalf("RouteTrunk: %+v", d)
		}
	})
	if allocs != 0 {
		t.Fatalf("RouteTrunk allocates %.1f times per packet of a known flow", allocs)
	}
}

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
	if d := r.RouteTrunk(0, udp("198.51.100.11", "203.0.113.10", 63), "edge-2", true); d.Verdict != Forward || d.To != c {
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
