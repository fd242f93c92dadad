package router

import (
	"bytes"
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
	icmp := make([]byte, IcmpBufSize)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := bytes.Clone(tc.pkt)
			before := l.r.Dropped(tc.reason)
			d := l.r.RouteTrunk(tc.vnet, tc.pkt, tc.applied, icmp)
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
	if d := l.r.RouteTrunk(0, syn, true, icmp); d.Verdict != Forward || d.To != l.siteA {
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
	d := l.r.RouteTrunk(0, other, false, icmp)
	if d.Verdict != Drop || d.Reason != ReasonPolicy || d.Reply != nil {
		t.Fatalf("SYN not yet judged, blocked here: %+v, want a silent policy drop", d)
	}
	if got := l.r.Stats().Replied; got != replied {
		t.Fatalf("replies counter moved from %d to %d for a block that was not answered", replied, got)
	}
}

func TestRouteTrunkDoesNotAllocate(t *testing.T) {
	l := newTrunkLab(t)
	icmp := make([]byte, IcmpBufSize)
	pkt := tcp("10.4.0.5", "10.1.2.3", 40000, 22, tcpACK, 1000)
	l.r.RouteTrunk(0, pkt, true, icmp) // the flow's first packet allocates its entry
	allocs := testing.AllocsPerRun(1000, func() {
		if d := l.r.RouteTrunk(0, pkt, true, icmp); d.Verdict != Forward {
			t.Fatalf("RouteTrunk: %+v", d)
		}
	})
	if allocs != 0 {
		t.Fatalf("RouteTrunk allocates %.1f times per packet of a known flow", allocs)
	}
}
