package router

import (
	"regexp"
	"testing"

	"github.com/switchyard/switchyard/router/policy"
)

// TestFlowBelongsToItsParties checks that a flow's cached decision applies
// only to packets between the two parties its first packet went between. A
// second site that may send from the same addresses (its routes overlap the
// first's, or cover the device overlay range) and reuses a flow's addresses
// and ports is judged by its own policy, does not change the flow, and
// cannot block it by sending first; replies from another replica of the
// destination tunnel, or to another session of the device, still belong to
// the flow.
func TestFlowBelongsToItsParties(t *testing.T) {
	const (
		laptop = "100.96.0.7"
		server = "10.1.2.3" // in site A's 10.1.0.0/16
	)
	// The laptop's user may reach anything from a device (a user condition
	// also holds for a site's flow to the user's device: the device
	// condition keeps this one to the device's own), site A may open SIP to
	// devices, everything else is blocked: site C on its own may send nothing.
	rules := func(l *lab) []policy.Rule {
		return []policy.Rule{
			{ID: polAllow, Allow: true, Match: policy.Cond{Op: policy.And, Kids: []policy.Cond{
				{Op: policy.In, Field: policy.User, Users: []string{"alice@example.com"}},
				{Op: policy.Matches, Field: policy.Device, Regexp: regexp.MustCompile(`^.*$`)},
			}}},
			{ID: polAllow, Allow: true, Match: policy.Cond{Op: policy.And, Kids: []policy.Cond{
				{Op: policy.In, Field: policy.Tunnel, IDs: [][16]byte{l.tunA}},
				{Op: policy.In, Field: policy.DstPort, Ports: []policy.PortRange{{Lo: 5060, Hi: 5060}}},
			}}},
		}
	}
	syn, synAck, ack, finAck := uint8(tcpSYN), uint8(tcpSYN|tcpACK), uint8(tcpACK), uint8(tcpFIN|tcpACK)
	out := func(flags uint8) []byte { return tcp(laptop, server, 40000, 443, flags, 1) }  // the laptop's connection
	back := func(flags uint8) []byte { return tcp(server, laptop, 443, 40000, flags, 9) } // and its replies
	sip := func(flags uint8) []byte { return tcp(server, laptop, 5060, 5060, flags, 1) }  // site A's call to the laptop
	sipBack := func(flags uint8) []byte { return tcp(laptop, server, 5060, 5060, flags, 9) }
	icmpAbout := func(p []byte, from string) []byte {
		h, _ := parse(p)
		return append([]byte(nil), buildICMPError(make([]byte, IcmpBufSize), ReasonNoRoute, mpa(from), p, h, 0)...)
	}

	// Routing tables: "base" is the lab's; in "overlap" site C also routes
	// 10.1.2.0/24, inside A's 10.1.0.0/16, and so may send from the server's
	// address; in "overlay" site C routes 100.64.0.0/10, which covers the
	// device overlay range (issue 22 item 1 closes that on its own).
	const (
		base = iota
		overlap
		overlay
	)
	type want uint8
	const (
		forward want = iota // forwarded to step.to
		block               // not forwarded: its sender's own policy blocked it
		refuse              // not forwarded, for whatever reason
	)
	type step struct {
		table int
		from  *Peer
		pkt   []byte
		times int   // how often it is sent; 0 means once
		down  *Peer // set down before sending
		want  want
		to    string // for forward: the name of the peer it goes to
	}
	tests := []struct {
		name  string
		steps func(l *lab, masque *Peer) []step
		// The victim's flow at the end: its first packet, who sent it, and
		// its counters.
		first   []byte
		from    string
		packets [2]uint64
	}{
		{
			name: "a site sending as the server does not ride the device's allowed flow",
			steps: func(l *lab, _ *Peer) []step {
				return []step{
					{table: base, from: l.laptop, pkt: out(syn), to: "A"},
					{table: overlap, from: l.siteC, pkt: back(finAck), times: 200, want: block},
					{table: base, from: l.siteA, pkt: back(synAck), to: "laptop"},
				}
			},
			first: out(syn), from: "laptop", packets: [2]uint64{1, 1},
		},
		{
			name: "a site sending as another does not ride the flow that site opened",
			steps: func(l *lab, _ *Peer) []step {
				return []step{
					{table: base, from: l.siteA, pkt: sip(syn), to: "laptop"},
					{table: overlap, from: l.siteC, pkt: sip(ack), times: 200, want: block},
					{table: base, from: l.laptop, pkt: sipBack(synAck), to: "A"},
					{table: base, from: l.siteA, pkt: sip(ack), to: "laptop"},
				}
			},
			first: sip(syn), from: "A", packets: [2]uint64{2, 1},
		},
		{
			name: "a site sending as the device does not ride the device's flow",
			steps: func(l *lab, _ *Peer) []step {
				return []step{
					{table: base, from: l.laptop, pkt: out(syn), to: "A"},
					{table: overlay, from: l.siteC, pkt: out(finAck), times: 200, want: refuse},
					{table: base, from: l.siteA, pkt: back(synAck), to: "laptop"},
				}
			},
			first: out(syn), from: "laptop", packets: [2]uint64{1, 1},
		},
		{
			name: "a site that sends first as the server does not block the device",
			steps: func(l *lab, _ *Peer) []step {
				return []step{
					{table: overlap, from: l.siteC, pkt: back(syn), want: block},
					{table: base, from: l.laptop, pkt: out(syn), to: "A"},
					{table: base, from: l.siteA, pkt: back(synAck), to: "laptop"},
					{table: base, from: l.laptop, pkt: out(ack), to: "A"},
				}
			},
			first: out(syn), from: "laptop", packets: [2]uint64{2, 1},
		},
		{
			name: "a site that sends first as the device does not block it",
			steps: func(l *lab, _ *Peer) []step {
				return []step{
					{table: overlay, from: l.siteC, pkt: out(syn), want: refuse},
					{table: base, from: l.laptop, pkt: out(syn), to: "A"},
					{table: base, from: l.siteA, pkt: back(synAck), to: "laptop"},
				}
			},
			first: out(syn), from: "laptop", packets: [2]uint64{1, 1},
		},
		{
			name: "replies from another replica of the tunnel belong to the flow",
			steps: func(l *lab, _ *Peer) []step {
				return []step{
					{table: base, from: l.laptop, pkt: out(syn), to: "A"},
					{table: base, from: l.siteA2, pkt: back(synAck), to: "laptop"},
					{table: base, down: l.siteA, from: l.laptop, pkt: out(ack), to: "A2"},
					{table: overlap, from: l.siteC, pkt: back(ack), times: 10, want: block},
					{table: base, from: l.siteA2, pkt: back(ack), to: "laptop"},
				}
			},
			first: out(syn), from: "laptop", packets: [2]uint64{2, 2},
		},
		{
			name: "another session of the device belongs to the flow",
			steps: func(l *lab, masque *Peer) []step {
				return []step{
					{table: base, from: l.laptop, pkt: out(syn), to: "A"},
					{table: base, down: l.laptop, from: l.siteA, pkt: back(synAck), to: "laptop/masque"},
					{table: base, from: masque, pkt: out(ack), to: "A"},
					{table: overlap, from: l.siteC, pkt: back(ack), times: 10, want: block},
				}
			},
			first: out(syn), from: "laptop", packets: [2]uint64{2, 1},
		},
		{
			name: "only the flow's far end speaks for it in ICMP errors",
			steps: func(l *lab, _ *Peer) []step {
				return []step{
					{table: base, from: l.laptop, pkt: out(syn), to: "A"},
					// Site C may send from 10.3.0.1, but the laptop's
					// packet never went its way.
					{table: base, from: l.siteC, pkt: icmpAbout(out(syn), "10.3.0.1"), times: 10, want: block},
					{table: base, from: l.siteA, pkt: icmpAbout(out(syn), "10.1.0.1"), to: "laptop"},
					{table: base, from: l.siteA, pkt: back(synAck), to: "laptop"},
					{table: base, from: l.laptop, pkt: icmpAbout(back(synAck), laptop), to: "A"},
				}
			},
			first: out(syn), from: "laptop", packets: [2]uint64{1, 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			l.laptop.User, l.laptop.Device = "alice@example.com", [16]byte{0xde, 0x71}
			masque := &Peer{Name: "laptop/masque", Kind: Client, Overlay: l.laptop.Overlay, User: l.laptop.User, Device: l.laptop.Device}
			masque.SetUp(true)
			tables := make([]*Table, 3)
			for i, extra := range []string{"", "10.1.2.0/24", "100.64.0.0/10"} {
				b := NewTableBuilder()
				b.AddRoute(0, mpp("10.1.0.0/16"), l.tunA)
				b.AddRoute(0, mpp("10.3.0.0/16"), l.tunC)
				if extra != "" {
					b.AddRoute(0, mpp(extra), l.tunC)
				}
				b.AddReplica(l.siteA)
				b.AddReplica(l.siteA2)
				b.AddReplica(l.siteC)
				b.AddClient(l.laptop)
				b.AddClient(masque)
				tables[i] = b.Build()
			}
			set, err := policy.NewSet(rules(l), false, 1)
			if err != nil {
				t.Fatal(err)
			}
			l.r.SetPolicies(set)
			icmp := make([]byte, IcmpBufSize)

			for i, s := range tc.steps(l, masque) {
				l.r.SetTable(tables[s.table])
				if s.down != nil {
					s.down.SetUp(false)
				}
				for n := range max(s.times, 1) {
					d := l.r.Route(s.from, append([]byte(nil), s.pkt...), icmp)
					switch {
					case s.want == forward && (d.Verdict != Forward || name(d.To) != s.to):
						t.Fatalf("step %d, from %s: verdict %d to %s (reason %v), want forwarded to %s", i, s.from.Name, d.Verdict, name(d.To), d.Reason, s.to)
					case s.want != forward && d.Verdict == Forward:
						t.Fatalf("step %d, from %s: packet %d of %d forwarded to %s, want it refused", i, s.from.Name, n+1, max(s.times, 1), name(d.To))
					case s.want == block && d.Reason != ReasonPolicy:
						t.Fatalf("step %d, from %s: %+v, want blocked by its own policy", i, s.from.Name, d)
					}
				}
			}

			h, _ := parse(tc.first)
			tp := l4(tc.first, h)
			var victim *FlowEntry
			for _, e := range l.r.Flows() {
				if e.Key.Src == h.src && e.Key.Dst == h.dst && e.Key.SrcPort == tp.sport && e.Key.DstPort == tp.dport && e.Meta.From.Name == tc.from {
					victim = &e
				}
			}
			switch {
			case victim == nil:
				t.Fatalf("no flow %s:%d > %s:%d from %s", h.src, tp.sport, h.dst, tp.dport, tc.from)
			case !victim.Verdict.Allow || victim.Packets != tc.packets || victim.Replied != (tc.packets[1] > 0) || victim.Closing:
				t.Fatalf("the flow = %+v; want allowed, packets %v, not closing", victim, tc.packets)
			}
		})
	}
}
