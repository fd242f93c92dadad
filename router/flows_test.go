package router

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/internal/packettest"
	"github.com/switchyard/switchyard/router/flow"
	"github.com/switchyard/switchyard/router/policy"
)

// tcp builds an IPv4 or IPv6 TCP segment with valid checksums.
func tcp(src, dst string, sport, dport uint16, flags uint8, seq uint32) []byte {
	return packettest.TCP(packettest.IP{Src: mpa(src), Dst: mpa(dst)}, packettest.TCPHeader{SrcPort: sport, DstPort: dport, Seq: seq, Flags: flags}, nil)
}

var (
	polAllow = [16]byte{15: 0xa1}
	polBlock = [16]byte{15: 0xb1}
)

// setRules compiles rules, in order, for the lab's router: generation gen.
func (l *lab) setRules(t *testing.T, gen uint64, defaultAllow bool, rules ...policy.Rule) {
	t.Helper()
	s, err := policy.NewSet(rules, defaultAllow, gen)
	if err != nil {
		t.Fatal(err)
	}
	l.r.SetPolicies(s)
}

// dstIs is the condition "dst_ip is dst".
func dstIs(dst string) policy.Cond {
	a := mpa(dst)
	return policy.Cond{Op: policy.In, Field: policy.DstIP, Prefixes: []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}}
}

func blockTo(dst string, silent bool) policy.Rule {
	return policy.Rule{ID: polBlock, Silent: silent, Match: dstIs(dst)}
}

func TestPolicyBlockAnswers(t *testing.T) {
	l := newLab(t)
	l.setRules(t, 1, true, blockTo("10.1.2.3", false), blockTo("2001:db8:1::3", false))
	icmp := make([]byte, IcmpBufSize)

	for _, tc := range []struct{ src, dst string }{{"10.3.0.5", "10.1.2.3"}, {"2001:db8:3::5", "2001:db8:1::3"}} {
		syn := tcp(tc.src, tc.dst, 40000, 22, tcpSYN, 1000)
		d := l.r.Route(l.siteC, syn, icmp)
		if d.Verdict != Reply || d.To != l.siteC || d.Reason != ReasonPolicy {
			t.Fatalf("blocked SYN %s: %+v", tc.dst, d)
		}
		h, ok := parse(d.Reply)
		if !ok || h.proto != 6 || h.src.String() != tc.dst || h.dst.String() != tc.src {
			t.Fatalf("RST header %+v", h)
		}
		rst := d.Reply[h.ihl:]
		if binary.BigEndian.Uint16(rst[0:2]) != 22 || binary.BigEndian.Uint16(rst[2:4]) != 40000 ||
			rst[13] != tcpRST|tcpACK || binary.BigEndian.Uint32(rst[8:12]) != 1001 || !checksumOK(d.Reply) {
			t.Fatalf("RST = % x", rst)
		}
	}

	d := l.r.Route(l.siteC, udp("10.3.0.5", "10.1.2.3", 64), icmp)
	if d.Verdict != Reply || d.Reply[20] != 3 || d.Reply[21] != 13 {
		t.Fatalf("blocked UDP: %+v, want ICMP 3/13", d)
	}
	// A RST is never answered with a RST.
	if d := l.r.Route(l.siteC, tcp("10.3.0.5", "10.1.2.3", 40001, 22, tcpRST, 1), icmp); d.Verdict != Drop || d.Reason != ReasonPolicy {
		t.Fatalf("blocked RST: %+v", d)
	}

	l.setRules(t, 2, true, blockTo("10.1.2.3", true))
	if d := l.r.Route(l.siteC, tcp("10.3.0.5", "10.1.2.3", 40002, 22, tcpSYN, 1), icmp); d.Verdict != Drop || d.Reason != ReasonPolicy {
		t.Fatalf("silent block: %+v", d)
	}
	if got := l.r.Stats().Dropped["policy"]; got != 5 {
		t.Fatalf("policy drops = %d, want 5", got)
	}
}

func TestPolicyRepliesAndReevaluation(t *testing.T) {
	l := newLab(t)
	// Allow the laptop to reach A; block everything else, replies from A included.
	l.setRules(t, 1, false, policy.Rule{ID: polAllow, Allow: true, Match: dstIs("10.1.2.3")})
	icmp := make([]byte, IcmpBufSize)
	out := tcp("100.96.0.7", "10.1.2.3", 40000, 443, tcpSYN, 1)
	back := tcp("10.1.2.3", "100.96.0.7", 443, 40000, tcpSYN|tcpACK, 9)
	if d := l.r.Route(l.laptop, out, icmp); d.Verdict != Forward {
		t.Fatalf("allowed SYN: %+v", d)
	}
	if d := l.r.Route(l.siteA, back, icmp); d.Verdict != Forward || d.To != l.laptop {
		t.Fatalf("the reply of an allowed flow: %+v", d)
	}
	// A connection A opens itself is a new flow, and the default blocks it.
	if d := l.r.Route(l.siteA, tcp("10.1.2.3", "100.96.0.7", 5000, 22, tcpSYN, 1), icmp); d.Verdict != Reply || d.Reason != ReasonPolicy {
		t.Fatalf("new flow from A: %+v", d)
	}
	// A rule change applies to the live flow on its next packet, both ways.
	l.setRules(t, 2, false)
	out[8], back[8] = 64, 64
	if d := l.r.Route(l.laptop, out, icmp); d.Verdict == Forward {
		t.Fatal("the live flow still passes after its allow rule went away")
	}
	if d := l.r.Route(l.siteA, back, icmp); d.Verdict == Forward {
		t.Fatal("replies of the live flow still pass after its allow rule went away")
	}
}

func TestFlowEvents(t *testing.T) {
	var mu sync.Mutex
	var events []FlowEvent
	r := New(Config{ICMPSource4: mpa("100.96.0.1"), OnFlow: func(ev FlowEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}})
	l := newLab(t)
	l.r = r
	l.rebuild()
	l.setRules(t, 1, true, policy.Rule{ID: polAllow, Allow: true,
		Match: policy.Cond{Op: policy.In, Field: policy.Tunnel, IDs: [][16]byte{l.tunC}}})
	icmp := make([]byte, IcmpBufSize)
	for range 3 {
		r.Route(l.siteC, tcp("10.3.0.5", "100.96.0.7", 5000, 80, tcpACK, 1), icmp)
	}
	r.Route(l.laptop, tcp("100.96.0.7", "10.3.0.5", 80, 5000, tcpACK, 1), icmp)
	if n := r.ExpireFlows(true); n != 1 {
		t.Fatalf("flushed %d flows, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0].End != nil || events[1].End == nil || *events[1].End != flow.Flushed {
		t.Fatalf("events = %+v", events)
	}
	e := events[1].Flow
	if e.Meta.From != l.siteC || e.Meta.To != l.laptop || e.Verdict.Policy != polAllow || e.Packets != [2]uint64{3, 1} {
		t.Fatalf("ended flow = %+v", e)
	}
}

func BenchmarkRouteNewFlows(b *testing.B) {
	l := newLab(&testing.T{})
	icmp := make([]byte, IcmpBufSize)
	pkt := tcp("100.96.0.7", "10.1.2.3", 0, 443, tcpSYN, 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		binary.BigEndian.PutUint16(pkt[20:22], uint16(i))
		binary.BigEndian.PutUint16(pkt[22:24], uint16(i>>16))
		pkt[8] = 64
		l.r.Route(l.laptop, pkt, icmp)
	}
}

// BenchmarkRouteParallel routes established flows from every core at once,
// one flow per goroutine, with a clock that is a load, as the edge runs it.
func BenchmarkRouteParallel(b *testing.B) {
	l := newLab(&testing.T{})
	var now atomic.Int64
	now.Store(1)
	l.r = New(Config{ICMPSource4: mpa("100.96.0.1"), Clock: now.Load})
	l.rebuild()
	var port atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		pkt := tcp("100.96.0.7", "10.1.2.3", uint16(40000+port.Add(1)), 443, tcpACK, 1)
		scratch := make([]byte, IcmpBufSize)
		for pb.Next() {
			pkt[8] = 64
			if l.r.Route(l.laptop, pkt, scratch).Verdict != Forward {
				b.Fatal("not forwarded")
			}
		}
	})
}

// TestFloodKeepsEstablishedFlows floods a small flow table with new flows
// from one site while a client's established flow keeps forwarding.
func TestFloodKeepsEstablishedFlows(t *testing.T) {
	l := newLab(t)
	l.r = New(Config{ICMPSource4: mpa("100.96.0.1"), MaxFlows: 256})
	l.rebuild()
	icmp := make([]byte, IcmpBufSize)
	out := tcp("100.96.0.7", "10.1.2.3", 40000, 443, tcpACK, 1)
	back := tcp("10.1.2.3", "100.96.0.7", 443, 40000, tcpACK, 1)
	route := func(from *Peer, p []byte) Decision { p[8] = 64; return l.r.Route(from, p, icmp) }
	route(l.laptop, out)
	route(l.siteA, back)
	flood := tcp("10.3.0.5", "100.96.0.7", 0, 80, tcpSYN, 1)
	for i := range 20000 {
		binary.BigEndian.PutUint16(flood[20:22], uint16(i))
		binary.BigEndian.PutUint16(flood[22:24], uint16(80+i>>16))
		if d := route(l.siteC, flood); d.Verdict != Forward {
			t.Fatalf("flood packet %d: %+v", i, d)
		}
		if i%1000 == 0 {
			if d := route(l.laptop, out); d.Verdict != Forward {
				t.Fatalf("the established flow stopped after %d new flows: %+v", i, d)
			}
		}
	}
	st := l.r.Stats().Policy
	if st.Flows > 256 || st.FlowEvictions < 20000-256 {
		t.Fatalf("flows %d, evictions %d; want at most 256 flows and the rest evicted", st.Flows, st.FlowEvictions)
	}
	if len(l.r.Flows()) != st.Flows {
		t.Fatalf("Flows() lists %d, Stats says %d", len(l.r.Flows()), st.Flows)
	}
	if found := slices.ContainsFunc(l.r.Flows(), func(e FlowEntry) bool { return e.Key.SrcPort == 40000 && e.Replied }); !found {
		t.Fatal("the established flow was evicted")
	}
}

// FuzzBlockedReply routes arbitrary packets under a block-everything rule
// set: every answer the router builds (RST or ICMP error) is a well-formed
// IP packet back to the sender.
func FuzzBlockedReply(f *testing.F) {
	f.Add(tcp("10.1.2.3", "10.3.0.5", 1, 22, tcpSYN, 7))
	f.Add(tcp("2001:db8:1::3", "2001:db8:3::5", 1, 22, tcpACK|tcpFIN, 7))
	f.Add(udp("10.1.2.3", "10.3.0.5", 64))
	l := newLab(&testing.T{})
	s, err := policy.NewSet(nil, false, 1)
	if err != nil {
		f.Fatal(err)
	}
	l.r.SetPolicies(s)
	icmp := make([]byte, IcmpBufSize)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		d := l.r.Route(l.siteA, pkt, icmp)
		if d.Verdict == Forward {
			t.Fatal("forwarded under a block-everything rule set")
		}
		if d.Verdict == Reply {
			h, ok := parse(d.Reply)
			if !ok || h.length != len(d.Reply) || d.To != l.siteA {
				t.Fatalf("malformed answer % x", d.Reply)
			}
		}
	})
}

// TestIPv6ExtensionHeaders finds the ports behind IPv6 extension headers, so
// that port rules and RSTs work for such packets too.
func TestIPv6ExtensionHeaders(t *testing.T) {
	l := newLab(t)
	l.setRules(t, 1, true, policy.Rule{ID: polBlock,
		Match: policy.Cond{Op: policy.In, Field: policy.DstPort, Ports: []policy.PortRange{{Lo: 22, Hi: 22}}}})
	icmp := make([]byte, IcmpBufSize)
	// withExt inserts an extension header of type typ (8 bytes) before the TCP header.
	withExt := func(p []byte, typ uint8, fragOffset uint16) []byte {
		out := append(append(append([]byte(nil), p[:40]...), make([]byte, 8)...), p[40:]...)
		out[6] = typ
		out[40] = 6 // then TCP
		if typ == 44 {
			binary.BigEndian.PutUint16(out[42:44], fragOffset<<3)
		}
		binary.BigEndian.PutUint16(out[4:6], uint16(len(out)-40))
		return out
	}
	syn := tcp("2001:db8:3::5", "2001:db8:1::3", 40000, 22, tcpSYN, 1)
	for _, typ := range []uint8{60, 0, 43, 44} {
		d := l.r.Route(l.siteC, withExt(syn, typ, 0), icmp)
		if d.Verdict != Reply {
			t.Fatalf("SYN to port 22 behind extension header %d: %+v", typ, d)
		}
		if h, ok := parse(d.Reply); !ok || h.proto != 6 || binary.BigEndian.Uint16(d.Reply[40:42]) != 22 || !checksumOK(d.Reply) {
			t.Fatalf("RST for extension header %d = % x", typ, d.Reply)
		}
	}
	// A non-first fragment has no ports: a port rule does not match it.
	if d := l.r.Route(l.siteC, withExt(syn, 44, 100), icmp); d.Verdict != Forward {
		t.Fatalf("non-first fragment: %+v", d)
	}
	// Port 80 behind a header passes.
	if d := l.r.Route(l.siteC, withExt(tcp("2001:db8:3::5", "2001:db8:1::3", 40000, 80, tcpSYN, 1), 60, 0), icmp); d.Verdict != Forward {
		t.Fatalf("SYN to port 80: %+v", d)
	}
}

// TestICMPErrorsOfAllowedFlows lets an ICMP error about a packet of an
// allowed flow through a default block (path MTU discovery), and no other.
func TestICMPErrorsOfAllowedFlows(t *testing.T) {
	l := newLab(t)
	allow := func(dst string) policy.Rule { return policy.Rule{ID: polAllow, Allow: true, Match: dstIs(dst)} }
	l.setRules(t, 1, false, allow("10.1.2.3"), allow("2001:db8:1::3"))
	icmp := make([]byte, IcmpBufSize)
	errorFor := func(p []byte, from string) []byte {
		h, _ := parse(p)
		return append([]byte(nil), buildICMPError(make([]byte, IcmpBufSize), ReasonNoRoute, mpa(from), p, h, 0)...)
	}
	for _, tc := range []struct {
		name     string
		from, to *Peer
		pkt      []byte
		errFrom  string
		otherPkt []byte
	}{
		{name: "client to site, IPv4", from: l.laptop, to: l.siteA,
			pkt: tcp("100.96.0.7", "10.1.2.3", 40000, 443, tcpSYN, 1), errFrom: "10.1.2.3",
			otherPkt: tcp("100.96.0.7", "10.1.2.3", 40001, 443, tcpSYN, 1)},
		{name: "site to site, IPv6", from: l.siteC, to: l.siteA,
			pkt: tcp("2001:db8:3::5", "2001:db8:1::3", 40000, 443, tcpSYN, 1), errFrom: "2001:db8:1::3",
			otherPkt: tcp("2001:db8:3::5", "2001:db8:1::3", 40001, 443, tcpSYN, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := l.r.Route(tc.from, tc.pkt, icmp); d.Verdict != Forward {
				t.Fatalf("allowed packet: %+v", d)
			}
			if d := l.r.Route(tc.to, errorFor(tc.pkt, tc.errFrom), icmp); d.Verdict != Forward || d.To != tc.from {
				t.Fatalf("ICMP error about the allowed flow: %+v", d)
			}
			if d := l.r.Route(tc.to, errorFor(tc.otherPkt, tc.errFrom), icmp); d.Verdict == Forward {
				t.Fatalf("ICMP error about a packet of no flow passed: %+v", d)
			}
		})
	}
}
