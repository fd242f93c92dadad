package router

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/internal/checksum"
	"github.com/switchyard/switchyard/internal/packettest"
)

var (
	mpp = netip.MustParsePrefix
	mpa = netip.MustParseAddr
)

// udp builds an IP/UDP packet from src to dst with the given TTL, valid
// checksums and, over IPv4, some trailing padding as WireGuard may leave.
func udp(src, dst string, ttl uint8) []byte {
	p := packettest.UDP(packettest.IP{Src: mpa(src), Dst: mpa(dst), TTL: ttl}, 0, 0, []byte("hello"))
	if p[0]>>4 == 4 {
		p = append(p, 0, 0, 0)
	}
	return p
}

// checksumOK reports whether every checksum of p (IPv4 header, transport) is valid.
func checksumOK(p []byte) bool { return packettest.Verify(p) == nil }

type lab struct {
	r                *Router
	siteA, siteB     *Peer // both serve 10.1.0.0/16, in vnets 0 and 1
	siteA2           *Peer // second replica of A
	siteC            *Peer // 10.3.0.0/16 in vnet 0
	laptop           *Peer // client 100.96.0.7
	tunA, tunB, tunC TunnelID
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{
		r:    New(Config{ICMPSource4: mpa("100.96.0.1"), ICMPSource6: mpa("fd00:5359::1"), Overlay: mpp("100.96.0.0/12"), EdgeBlock6: mpp("fd00:5359::/64"), ICMPRate: 1000}),
		tunA: TunnelID{1}, tunB: TunnelID{2}, tunC: TunnelID{3},
	}
	mk := func(name string, kind Kind, tun TunnelID, vnet uint32, overlay string) *Peer {
		p := &Peer{Name: name, Kind: kind, Tunnel: tun}
		if overlay != "" {
			p.Overlay = mpa(overlay)
		}
		p.SetVNet(vnet)
		p.SetUp(true)
		return p
	}
	l.siteA = mk("A", Connector, l.tunA, 0, "")
	l.siteA2 = mk("A2", Connector, l.tunA, 0, "")
	l.siteB = mk("B", Connector, l.tunB, 1, "")
	l.siteC = mk("C", Connector, l.tunC, 0, "")
	l.laptop = mk("laptop", Client, TunnelID{}, 0, "100.96.0.7")
	l.rebuild()
	return l
}

func (l *lab) rebuild() {
	b := NewTableBuilder()
	b.AddRoute(0, mpp("10.1.0.0/16"), l.tunA)
	b.AddRoute(0, mpp("2001:db8:1::/48"), l.tunA)
	b.AddRoute(1, mpp("10.1.0.0/16"), l.tunB)
	b.AddRoute(0, mpp("10.3.0.0/16"), l.tunC)
	b.AddRoute(0, mpp("2001:db8:3::/48"), l.tunC)
	for _, p := range []*Peer{l.siteA, l.siteA2, l.siteB, l.siteC} {
		b.AddReplica(p)
	}
	b.AddClient(l.laptop)
	l.r.SetTable(b.Build())
}

func TestRoute(t *testing.T) {
	l := newLab(t)
	tests := []struct {
		name    string
		from    *Peer
		pkt     []byte
		verdict Verdict
		to      *Peer
		reason  Reason
	}{
		{"client to site A", l.laptop, udp("100.96.0.7", "10.1.2.3", 64), Forward, l.siteA, 0},
		{"site A to client (server-initiated)", l.siteA, udp("10.1.2.3", "100.96.0.7", 64), Forward, l.laptop, 0},
		{"site A to site C", l.siteA, udp("10.1.2.3", "10.3.0.5", 64), Forward, l.siteC, 0},
		{"site C to site A", l.siteC, udp("10.3.0.5", "10.1.2.3", 64), Forward, l.siteA, 0},
		{"site B to client", l.siteB, udp("10.1.2.3", "100.96.0.7", 64), Forward, l.laptop, 0},
		{"IPv6 client to site A", l.laptop, udp("2001:db8:1::9", "2001:db8:1::1", 64), Drop, nil, ReasonSpoofed},
		{"IPv6 site A to unrouted", l.siteA, udp("2001:db8:1::1", "2001:db8:2::1", 64), Reply, l.siteA, ReasonNoRoute},
		{"vnet isolation: site B to site C", l.siteB, udp("10.1.2.3", "10.3.0.5", 64), Reply, l.siteB, ReasonNoRoute},
		{"spoofed connector source", l.siteA, udp("10.3.0.5", "10.1.9.9", 64), Drop, nil, ReasonSpoofed},
		{"spoofed client source", l.laptop, udp("100.96.0.8", "10.1.2.3", 64), Drop, nil, ReasonSpoofed},
		{"B may not send from A's vnet", l.siteB, udp("10.3.0.5", "100.96.0.7", 64), Drop, nil, ReasonSpoofed},
		{"TTL expires", l.laptop, udp("100.96.0.7", "10.1.2.3", 1), Reply, l.laptop, ReasonTTLExceeded},
		{"unrouted", l.laptop, udp("100.96.0.7", "198.51.100.1", 64), Reply, l.laptop, ReasonNoRoute},
		{"IPv6 site A to site C", l.siteA, udp("2001:db8:1::1", "2001:db8:3::1", 64), Forward, l.siteC, 0},
		{"loop", l.siteA, udp("10.1.2.3", "10.1.7.7", 64), Drop, nil, ReasonLoop},
		{"loop through another replica", l.siteA2, udp("10.1.2.3", "10.1.7.7", 64), Drop, nil, ReasonLoop},
		{"malformed", l.siteA, []byte{0x45, 0, 0}, Drop, nil, ReasonMalformed},
		{"IPv6 neighbor discovery from a TUN", l.siteA, udp("fe80::1", "ff02::2", 255), Drop, nil, ReasonLinkLocal},
		{"multicast from a site", l.siteA, udp("10.1.2.3", "224.0.0.251", 1), Drop, nil, ReasonLinkLocal},
		{"link-local destination", l.laptop, udp("100.96.0.7", "169.254.1.1", 64), Drop, nil, ReasonLinkLocal},
		{"bad length", l.siteA, udp("10.1.2.3", "10.3.0.5", 64)[:25], Drop, nil, ReasonMalformed},
		{"to the edge itself", l.siteA, udp("10.1.2.3", "100.96.0.1", 64), Local, l.siteA, 0},
		{"IPv6 to the edge itself", l.siteC, udp("2001:db8:3::1", "fd00:5359::1", 64), Local, l.siteC, 0},
		{"spoofed, to the edge itself", l.siteA, udp("10.3.0.5", "100.96.0.1", 64), Drop, nil, ReasonSpoofed},
	}
	icmp := make([]byte, IcmpBufSize)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkt := tc.pkt
			orig := append([]byte(nil), pkt...)
			before := l.r.Dropped(tc.reason)
			d := l.r.Route(tc.from, pkt, icmp)
			if d.Verdict != tc.verdict || d.To != tc.to {
				t.Fatalf("Route = verdict %d to %v (reason %v), want %d to %v", d.Verdict, name(d.To), d.Reason, tc.verdict, name(tc.to))
			}
			switch d.Verdict {
			case Forward:
				h, _ := parse(orig)
				got, _ := parse(pkt[:d.Len])
				if d.Len != h.length || got.src != h.src || got.dst != h.dst || got.ttl != h.ttl-1 {
					t.Fatalf("forwarded header %+v, want %+v with TTL-1", got, h)
				}
				if !got.v6 && !checksumOK(pkt) {
					t.Fatal("IPv4 header checksum invalid after TTL decrement")
				}
			case Reply:
				checkICMP(t, d.Reply, orig, tc.reason)
				fallthrough
			case Drop:
				if d.Reason != tc.reason || l.r.Dropped(tc.reason) != before+1 {
					t.Fatalf("reason %v (counter %d→%d), want %v counted", d.Reason, before, l.r.Dropped(tc.reason), tc.reason)
				}
			}
		})
	}
}

// A connector whose routes cover the device overlay range and the edge's
// addresses (an egress site's 0.0.0.0/0 and ::/0, a CGNAT site's
// 100.64.0.0/10) still may not send from them: such packets are dropped and
// counted as spoofed, and an overlay address that no device holds is not
// routed to the covering tunnel.
func TestConnectorNeverSendsAsDeviceOrEdge(t *testing.T) {
	l := newLab(t)
	tunE := TunnelID{5}
	siteE := &Peer{Name: "E", Kind: Connector, Tunnel: tunE}
	siteE.SetUp(true)
	b := NewTableBuilder()
	b.AddRoute(0, mpp("0.0.0.0/0"), tunE)
	b.AddRoute(0, mpp("::/0"), tunE)
	b.AddRoute(0, mpp("10.5.0.0/16"), tunE)
	b.AddRoute(0, mpp("10.3.0.0/16"), l.tunC)
	b.AddRoute(0, mpp("2001:db8:3::/48"), l.tunC)
	b.AddRoute(1, mpp("100.64.0.0/10"), l.tunB)
	b.AddReplica(siteE)
	b.AddReplica(l.siteC)
	b.AddReplica(l.siteB)
	b.AddClient(l.laptop)
	l.r.SetTable(b.Build())
	tests := []struct {
		name    string
		from    *Peer
		pkt     []byte
		verdict Verdict
		to      *Peer
		reason  Reason
	}{
		{"egress site from its site", siteE, udp("10.5.0.9", "10.3.0.5", 64), Forward, l.siteC, 0},
		{"egress site from the internet", siteE, udp("198.51.100.7", "10.3.0.5", 64), Forward, l.siteC, 0},
		{"egress site to a device", siteE, udp("10.5.0.9", "100.96.0.7", 64), Forward, l.laptop, 0},
		{"site C to the internet", l.siteC, udp("10.3.0.5", "198.51.100.7", 64), Forward, siteE, 0},
		{"egress site as a device", siteE, udp("100.96.0.7", "10.3.0.5", 64), Drop, nil, ReasonSpoofed},
		{"egress site as an unassigned overlay address", siteE, udp("100.96.3.3", "10.3.0.5", 64), Drop, nil, ReasonSpoofed},
		{"egress site as the edge", siteE, udp("100.96.0.1", "10.3.0.5", 64), Drop, nil, ReasonSpoofed},
		{"egress site as the edge to a device", siteE, udp("100.96.0.1", "100.96.0.7", 64), Drop, nil, ReasonSpoofed},
		{"egress site as the edge to the edge", siteE, udp("100.96.0.1", "100.96.0.1", 64), Drop, nil, ReasonSpoofed},
		{"egress site as the edge over IPv6", siteE, udp("fd00:5359::1", "2001:db8:3::1", 64), Drop, nil, ReasonSpoofed},
		{"CGNAT site as a device", l.siteB, udp("100.96.0.7", "100.64.0.9", 64), Drop, nil, ReasonSpoofed},
		{"CGNAT site from its site", l.siteB, udp("100.64.0.9", "100.96.0.7", 64), Forward, l.laptop, 0},
		{"unassigned overlay address", l.siteC, udp("10.3.0.5", "100.96.3.3", 64), Reply, l.siteC, ReasonNoRoute},
		{"egress site as another edge", siteE, udp("100.111.255.253", "10.3.0.5", 64), Drop, nil, ReasonSpoofed},
		{"egress site as another edge over IPv6", siteE, udp("fd00:5359::3", "2001:db8:3::1", 64), Drop, nil, ReasonSpoofed},
		{"to another edge's own address", l.siteC, udp("10.3.0.5", "100.111.255.253", 64), Reply, l.siteC, ReasonNoRoute},
		{"to another edge's own IPv6 address", l.siteC, udp("2001:db8:3::1", "fd00:5359::3", 64), Reply, l.siteC, ReasonNoRoute},
	}
	icmp := make([]byte, IcmpBufSize)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := l.r.Dropped(tc.reason)
			d := l.r.Route(tc.from, tc.pkt, icmp)
			if d.Verdict != tc.verdict || d.To != tc.to {
				t.Fatalf("Route = verdict %d to %v (reason %v), want %d to %v", d.Verdict, name(d.To), d.Reason, tc.verdict, name(tc.to))
			}
			if d.Verdict != Forward && (d.Reason != tc.reason || l.r.Dropped(tc.reason) != before+1) {
				t.Fatalf("reason %v (counter %d→%d), want %v counted", d.Reason, before, l.r.Dropped(tc.reason), tc.reason)
			}
		})
	}
}

func name(p *Peer) string {
	if p == nil {
		return "nil"
	}
	return p.Name
}

// checkICMP validates an ICMP error: addressed to the original source, from
// the configured address, valid checksums, quoting the original.
func checkICMP(t *testing.T, reply, orig []byte, reason Reason) {
	t.Helper()
	h, ok := parse(reply)
	oh, _ := parse(orig)
	if !ok || h.length != len(reply) || h.dst != oh.src {
		t.Fatalf("ICMP reply header %+v invalid or not addressed to %s", h, oh.src)
	}
	typ, code := icmpType(reason, h.v6)
	if reply[h.ihl] != typ || reply[h.ihl+1] != code {
		t.Fatalf("ICMP type/code %d/%d, want %d/%d", reply[h.ihl], reply[h.ihl+1], typ, code)
	}
	if err := packettest.Verify(reply); err != nil {
		t.Fatalf("ICMP reply: %v", err)
	}
	want := mpa("100.96.0.1")
	if h.v6 {
		want = mpa("fd00:5359::1")
	}
	if h.src != want {
		t.Fatalf("ICMP reply from %s, want %s", h.src, want)
	}
	quoted := reply[h.ihl+8:]
	if string(quoted) != string(orig[:min(len(quoted), oh.length)]) {
		t.Fatal("ICMP reply does not quote the original packet")
	}
}

func TestClientSwitchesVNet(t *testing.T) {
	l := newLab(t)
	icmp := make([]byte, IcmpBufSize)
	if d := l.r.Route(l.laptop, udp("100.96.0.7", "10.1.2.3", 64), icmp); d.To != l.siteA {
		t.Fatalf("in vnet 0, 10.1.2.3 goes to %s, want A", name(d.To))
	}
	l.laptop.SetVNet(1)
	if d := l.r.Route(l.laptop, udp("100.96.0.7", "10.1.2.3", 64), icmp); d.To != l.siteB {
		t.Fatalf("after switching to vnet 1, 10.1.2.3 goes to %s, want B", name(d.To))
	}
	if d := l.r.Route(l.laptop, udp("100.96.0.7", "10.3.0.5", 64), icmp); d.Verdict != Reply || d.Reason != ReasonNoRoute {
		t.Fatalf("after switching to vnet 1, site C (vnet 0 only) is still reachable: %+v", d)
	}
}

func TestFailover(t *testing.T) {
	l := newLab(t)
	icmp := make([]byte, IcmpBufSize)
	l.siteA.SetUp(false)
	if d := l.r.Route(l.laptop, udp("100.96.0.7", "10.1.2.3", 64), icmp); d.To != l.siteA2 {
		t.Fatalf("with replica A down, packet went to %s, want A2", name(d.To))
	}
	// Either replica may send from the site.
	if d := l.r.Route(l.siteA2, udp("10.1.2.3", "100.96.0.7", 64), icmp); d.To != l.laptop {
		t.Fatalf("replica A2 to laptop: %+v", d)
	}
	l.siteA2.SetUp(false)
	if d := l.r.Route(l.laptop, udp("100.96.0.7", "10.1.2.3", 64), icmp); d.Verdict != Reply || d.Reason != ReasonTunnelDown {
		t.Fatalf("with every replica down: %+v, want host unreachable", d)
	}
}

func TestActiveReplica(t *testing.T) {
	l := newLab(t)
	icmp := make([]byte, IcmpBufSize)
	to := func() *Peer { return l.r.Route(l.laptop, udp("100.96.0.7", "10.1.2.3", 64), icmp).To }
	l.siteA2.SetActive(true)
	if got := to(); got != l.siteA2 {
		t.Fatalf("with A2 active, packet went to %s", name(got))
	}
	l.siteA2.SetUp(false) // dead before the edge picked another: the first one up
	if got := to(); got != l.siteA {
		t.Fatalf("with active A2 down, packet went to %s, want A", name(got))
	}
}

func TestNoErrorAboutAnError(t *testing.T) {
	l := newLab(t)
	icmp := make([]byte, IcmpBufSize)
	d := l.r.Route(l.laptop, udp("100.96.0.7", "198.51.100.1", 64), icmp)
	if d.Verdict != Reply {
		t.Fatal("no ICMP error for an unrouted packet")
	}
	// Send the error itself back through: it must be dropped, not answered.
	reply := append([]byte(nil), d.Reply...)
	copy(reply[12:16], []byte{10, 1, 2, 3}) // pretend site A sent it, to an unrouted address
	copy(reply[16:20], []byte{198, 51, 100, 9})
	binary.BigEndian.PutUint16(reply[10:12], 0)
	binary.BigEndian.PutUint16(reply[10:12], ^checksum.Fold(checksum.Sum(reply[:20], 0)))
	if d := l.r.Route(l.siteA, reply, icmp); d.Verdict != Drop {
		t.Fatalf("an ICMP error about an ICMP error was generated: %+v", d)
	}
}

func TestICMPRateLimit(t *testing.T) {
	l := newLab(t)
	l.r = New(Config{ICMPSource4: mpa("100.96.0.1"), ICMPRate: 5})
	l.rebuild()
	icmp := make([]byte, IcmpBufSize)
	replies := 0
	for i := 0; i < 50; i++ {
		if l.r.Route(l.laptop, udp("100.96.0.7", "198.51.100.1", 64), icmp).Verdict == Reply {
			replies++
		}
	}
	if replies < 5 || replies > 6 {
		t.Fatalf("%d ICMP errors for 50 packets at rate 5/s, want 5 (burst)", replies)
	}
}

func TestRouteDoesNotAllocate(t *testing.T) {
	l := newLab(t)
	icmp := make([]byte, IcmpBufSize)
	fwd := udp("100.96.0.7", "10.1.2.3", 64)
	unrouted := udp("100.96.0.7", "198.51.100.1", 64)
	fromSite := udp("10.1.2.3", "100.96.0.7", 64)
	asDevice := udp("100.96.0.7", "10.3.0.5", 64)
	allocs := testing.AllocsPerRun(1000, func() {
		fwd[8], fromSite[8] = 64, 64
		l.r.Route(l.laptop, fwd, icmp)
		l.r.Route(l.laptop, unrouted, icmp)
		l.r.Route(l.siteA, fromSite, icmp)
		l.r.Route(l.siteA, asDevice, icmp)
	})
	if allocs != 0 {
		t.Fatalf("Route allocates %.1f times per packet, want 0", allocs)
	}
}

func FuzzRoute(f *testing.F) {
	f.Add(udp("10.1.2.3", "10.3.0.5", 64))
	f.Add(udp("2001:db8:1::1", "2001:db8:2::1", 1))
	f.Add([]byte{0x45})
	l := newLab(&testing.T{})
	icmp := make([]byte, IcmpBufSize)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := append([]byte(nil), pkt...)
		d := l.r.Route(l.siteA, pkt, icmp)
		switch d.Verdict {
		case Forward:
			if d.Len > len(pkt) || d.To == nil {
				t.Fatalf("forward with Len %d of %d", d.Len, len(pkt))
			}
			if string(pkt[12:20]) != string(orig[12:20]) && orig[0]>>4 == 4 {
				t.Fatal("addresses rewritten")
			}
		case Reply:
			if h, ok := parse(d.Reply); !ok || h.length != len(d.Reply) {
				t.Fatal("malformed ICMP reply")
			}
		}
	})
}

func BenchmarkRoute(b *testing.B) {
	l := newLab(&testing.T{})
	icmp := make([]byte, IcmpBufSize)
	pkt := udp("100.96.0.7", "10.1.2.3", 64)
	b.ReportAllocs()
	for b.Loop() {
		pkt[8] = 64
		l.r.Route(l.laptop, pkt, icmp)
	}
}

func TestReceivedCountsEveryOutcome(t *testing.T) {
	l := newLab(t)
	icmp := make([]byte, IcmpBufSize)
	pkts := []struct {
		from *Peer
		pkt  []byte
	}{
		{l.laptop, udp("100.96.0.7", "10.1.2.3", 64)},     // forwarded
		{l.laptop, udp("100.96.0.7", "198.51.100.1", 64)}, // ICMP error
		{l.siteA, udp("10.3.0.5", "10.1.9.9", 64)},        // spoofed
		{l.siteA, udp("10.1.2.3", "100.96.0.1", 64)},      // for the edge itself
		{l.siteA, []byte{0x45}},                           // malformed
	}
	for _, p := range pkts {
		l.r.Route(p.from, p.pkt, icmp)
	}
	if got := l.r.Stats().Received; got != uint64(len(pkts)) {
		t.Fatalf("Received = %d after routing %d packets", got, len(pkts))
	}
}
