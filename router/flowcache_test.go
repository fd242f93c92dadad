package router

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/internal/packettest"
	"github.com/switchyard/switchyard/router/policy"
)

// cachedStep is one packet of TestFlowCacheMatchesRoute, from a peer of
// the lab (by name), or a change to the lab between packets.
type cachedStep struct {
	from   string
	pkt    func() []byte
	change func(l *lab, t *testing.T)
}

// TestFlowCacheMatchesRoute routes the same packets through Route and
// through RouteCached on twin labs: every decision, every packet's bytes
// after routing, and every flow's counts after Flush are the same. The
// packets include what must not hit the cache: the same addresses and ports
// from another site (spoofed), a SYN and a FIN, a TTL of 1, a packet larger
// than the peer's MTU, and a policy change in the middle of a batch.
func TestFlowCacheMatchesRoute(t *testing.T) {
	out := func() []byte { return tcp("100.96.0.7", "10.1.2.3", 40000, 443, tcpACK, 1) }
	back := func() []byte { return tcp("10.1.2.3", "100.96.0.7", 443, 40000, tcpACK, 2) }
	steps := []cachedStep{
		{from: "laptop", pkt: func() []byte { return tcp("100.96.0.7", "10.1.2.3", 40000, 443, tcpSYN, 1) }},
		{from: "laptop", pkt: out}, {from: "A", pkt: back}, {from: "laptop", pkt: out}, {from: "A", pkt: back},
		{from: "laptop", pkt: out}, {from: "laptop", pkt: out},
		{from: "C", pkt: back}, // A's flow's reply, but from another site: spoofed
		{from: "laptop", pkt: func() []byte { return udp("100.96.0.7", "10.3.0.5", 64) }},
		{from: "laptop", pkt: func() []byte { return udp("100.96.0.7", "10.3.0.5", 64) }},
		{from: "laptop", pkt: out},
		{from: "laptop", pkt: func() []byte {
			return packettest.TCP(packettest.IP{Src: mpa("100.96.0.7"), Dst: mpa("10.1.2.3"), TTL: 1},
				packettest.TCPHeader{SrcPort: 40000, DstPort: 443, Flags: tcpACK}, nil)
		}},
		{change: func(l *lab, t *testing.T) { l.siteA.SetMTU(60) }},
		{from: "A", pkt: back},     // toward the laptop: A's MTU does not matter
		{from: "laptop", pkt: out}, // larger than A's MTU now: fragments
		{change: func(l *lab, t *testing.T) { l.siteA.SetMTU(0) }},
		{from: "laptop", pkt: out},
		{change: func(l *lab, t *testing.T) {
			l.setRules(t, 2, false, policy.Rule{ID: polAllow, Allow: true, Match: dstIs("10.3.0.5")})
		}},
		{from: "laptop", pkt: out}, // its allow rule went away
		{from: "laptop", pkt: func() []byte { return udp("100.96.0.7", "10.3.0.5", 64) }},
		{from: "laptop", pkt: func() []byte { return tcp("100.96.0.7", "10.1.2.3", 40000, 443, tcpFIN|tcpACK, 3) }},
	}
	plain, cached := newLab(t), newLab(t)
	for _, l := range []*lab{plain, cached} {
		l.setRules(t, 1, true)
	}
	peer := func(l *lab, name string) *Peer {
		return map[string]*Peer{"laptop": l.laptop, "A": l.siteA, "C": l.siteC}[name]
	}
	var c FlowCache
	icmp1, icmp2 := make([]byte, IcmpBufSize), make([]byte, IcmpBufSize)
	hits := 0
	for i, s := range steps {
		if s.change != nil {
			s.change(plain, t)
			s.change(cached, t)
			continue
		}
		p1, p2 := s.pkt(), s.pkt()
		held := c.ents[0].packets + c.ents[1].packets
		fwd := cached.r.Stats().Forwarded
		d1 := plain.r.Route(peer(plain, s.from), p1, icmp1)
		d2 := cached.r.RouteCached(&c, peer(cached, s.from), p2, icmp2)
		if d1.Verdict != d2.Verdict || d1.Len != d2.Len || d1.Reason != d2.Reason || d1.MTU != d2.MTU ||
			(d1.To == nil) != (d2.To == nil) || (d1.To != nil && d1.To.Name != d2.To.Name) {
			t.Fatalf("step %d: Route %+v, RouteCached %+v", i, d1, d2)
		}
		if !bytes.Equal(p1, p2) || !bytes.Equal(d1.Reply, d2.Reply) {
			t.Fatalf("step %d: the packets differ after routing", i)
		}
		if d2.Verdict == Forward && cached.r.Stats().Forwarded != fwd+1 {
			t.Fatalf("step %d: forwarded counter did not move", i)
		}
		if pending := c.ents[0].packets + c.ents[1].packets; pending > held {
			hits++
		}
	}
	cached.r.Flush(&c)
	if hits == 0 {
		t.Fatal("no packet hit the cache")
	}
	if s1, s2 := plain.r.Stats(), cached.r.Stats(); s1.Forwarded != s2.Forwarded || s1.ForwardedBytes != s2.ForwardedBytes ||
		s1.Received != s2.Received || s1.ReceivedBytes != s2.ReceivedBytes {
		t.Errorf("stats differ: Route %+v, RouteCached %+v", s1, s2)
	}
	counts := func(l *lab) []string {
		var out []string
		for _, f := range l.r.Flows() {
			out = append(out, fmt.Sprintf("%s>%s packets %v bytes %v from %s", f.Key.Src, f.Key.Dst, f.Packets, f.Bytes, f.Meta.From.Name))
		}
		slices.Sort(out)
		return out
	}
	if a, b := counts(plain), counts(cached); !slices.Equal(a, b) {
		t.Errorf("flows differ after Flush:\nRoute       %q\nRouteCached %q", a, b)
	}
}

func TestRouteCachedDoesNotAllocate(t *testing.T) {
	l := newLab(t)
	icmp := make([]byte, IcmpBufSize)
	fwd := udp("100.96.0.7", "10.1.2.3", 64)
	var c FlowCache
	allocs := testing.AllocsPerRun(1000, func() {
		for range 8 {
			fwd[8] = 64
			l.r.RouteCached(&c, l.laptop, fwd, icmp)
		}
		l.r.Flush(&c)
	})
	if allocs != 0 {
		t.Fatalf("RouteCached allocates %.1f times per batch, want 0", allocs)
	}
}

// BenchmarkRouteCached is BenchmarkRoute for a flow's packets after its
// first, as the edge routes a batch.
func BenchmarkRouteCached(b *testing.B) {
	l := newLab(&testing.T{})
	icmp := make([]byte, IcmpBufSize)
	pkt := udp("100.96.0.7", "10.1.2.3", 64)
	var c FlowCache
	b.ReportAllocs()
	for b.Loop() {
		pkt[8] = 64
		l.r.RouteCached(&c, l.laptop, pkt, icmp)
	}
	l.r.Flush(&c)
}
