package edge

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/internal/packettest"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// device enrolls a device named name in vnet ("" for the default) and
// starts its WireGuard peer; it returns the peer and the overlay IP.
func (l *edgeLab) device(t *testing.T, name, vnet string) (*agentPeer, netip.Addr) {
	t.Helper()
	ctx := context.Background()
	tok, secret, err := l.reg.CreateEnrollToken(ctx, model.NewEnrollToken{})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := wireguard.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.PublicKey()
	d, _, err := l.reg.EnrollDevice(ctx, registry.Credential{ID: tok.ID, Secret: secret},
		model.DeviceEnrollment{Name: name, PublicKey: base64.StdEncoding.EncodeToString(pub[:])}, registry.Credential{})
	if err != nil {
		t.Fatal(err)
	}
	if vnet != "" {
		if _, err := l.reg.SelectVNet(ctx, d.ID, vnet); err != nil {
			t.Fatal(err)
		}
	}
	return startAgentPeer(t, priv, l.dp.ep.PublicKey(), l.dp.ep.Port()), d.IP
}

// query sends a DNS query for name and type from src:40053 to the edge's
// address dst:53 through a, and returns the answer, or nil when none
// arrives within wait. The answer's IP and UDP headers must come from
// dst:53 to src:40053 with valid checksums.
func query(t *testing.T, a *agentPeer, src, dst netip.Addr, name string, qtype uint16, wait time.Duration) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	buf, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	a.send(t, packettest.UDP(packettest.IP{Src: src, Dst: dst}, 40053, 53, buf))
	deadline := time.Now().Add(wait)
	for {
		p := a.recv(time.Until(deadline))
		if p == nil {
			return nil
		}
		if err := packettest.Verify(p); err != nil {
			t.Fatalf("answer to %s: %v", name, err)
		}
		psrc, pdst, sport, payload, ok := udpTo(p, 40053)
		if !ok {
			continue // a keepalive or an ICMP error: not the answer
		}
		if psrc != dst || pdst != src || sport != 53 {
			t.Fatalf("answer to %s came %s:%d -> %s, want %s:53 -> %s", name, psrc, sport, pdst, dst, src)
		}
		m := new(dns.Msg)
		if err := m.Unpack(payload); err != nil {
			t.Fatalf("answer to %s does not parse: %v", name, err)
		}
		if m.Id != q.Id {
			continue
		}
		return m
	}
}

// wantAnswer checks an answer's rcode and the addresses it gives.
func wantAnswer(t *testing.T, what string, m *dns.Msg, rcode int, addrs ...string) {
	t.Helper()
	if m == nil {
		t.Fatalf("%s: no answer", what)
	}
	if m.Rcode != rcode {
		t.Fatalf("%s: rcode %s, want %s\n%s", what, dns.RcodeToString[m.Rcode], dns.RcodeToString[rcode], m)
	}
	var got []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			got = append(got, rr.A.String())
		case *dns.AAAA:
			got = append(got, rr.AAAA.String())
		case *dns.SOA:
			got = append(got, "soa")
		}
		if rr.Header().Ttl != dnsTTL {
			t.Fatalf("%s: TTL %d, want %d", what, rr.Header().Ttl, dnsTTL)
		}
	}
	if len(got) != len(addrs) || (len(addrs) == 1 && got[0] != addrs[0]) {
		t.Fatalf("%s: answers %v, want %v\n%s", what, got, addrs, m)
	}
	if rcode == dns.RcodeRefused {
		return
	}
	if !m.Authoritative {
		t.Fatalf("%s: not authoritative", what)
	}
	if len(addrs) == 0 {
		if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA || m.Ns[0].(*dns.SOA).Minttl != dnsTTL {
			t.Fatalf("%s: a negative answer without the zone's SOA:\n%s", what, m)
		}
	}
}

// TestOverlayNames sends real DNS queries through WireGuard sessions and
// the router: a site host resolves the devices of its own vnet at the
// edge's address, never another vnet's; names outside the zone are
// refused; the zone follows the registry; a spoofed source gets nothing;
// a session is rate limited.
func TestOverlayNames(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	if _, err := l.reg.CreateVNet(ctx, model.NewVNet{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	siteA := l.connector(t, "site-a", "", "10.1.0.0/16", "2001:db8:1::/48")
	siteB := l.connector(t, "site-b", "other", "10.2.0.0/16")
	laptop, laptopIP := l.device(t, "Laptop_7", "")
	labPC, labIP := l.device(t, "lab_pc", "other")
	hostA, hostA6, hostB := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8:1::3"), netip.MustParseAddr("10.2.0.9")
	edge4, edge6 := model.EdgeAddress(model.DefaultOverlayRange), model.EdgeAddress6
	siteA.send(t, ping(edge4.String(), hostA.String()))
	siteB.send(t, ping(edge4.String(), hostB.String()))
	laptop.send(t, ping(edge4.String(), laptopIP.String()))
	labPC.send(t, ping(edge4.String(), labIP.String()))
	l.waitUp(t, 4)
	eventually(t, "the devices' names", 5*time.Second, func() bool {
		n := l.dp.dns.names.Load()
		return n != nil && len(n.byVNet) == 2
	})
	const wait = 2 * time.Second

	wantAnswer(t, "site A: laptop-7 A", query(t, siteA, hostA, edge4, "laptop-7.sy.internal", dns.TypeA, wait), dns.RcodeSuccess, laptopIP.String())
	wantAnswer(t, "site A: LAPTOP-7 (case)", query(t, siteA, hostA, edge4, "LAPTOP-7.Sy.Internal", dns.TypeA, wait), dns.RcodeSuccess, laptopIP.String())
	wantAnswer(t, "site A over IPv6", query(t, siteA, hostA6, edge6, "laptop-7.sy.internal", dns.TypeA, wait), dns.RcodeSuccess, laptopIP.String())
	wantAnswer(t, "site A: laptop-7 AAAA", query(t, siteA, hostA, edge4, "laptop-7.sy.internal", dns.TypeAAAA, wait), dns.RcodeSuccess)
	wantAnswer(t, "site A: the zone's SOA", query(t, siteA, hostA, edge4, "sy.internal", dns.TypeSOA, wait), dns.RcodeSuccess, "soa")
	wantAnswer(t, "site A: unknown name", query(t, siteA, hostA, edge4, "nobody.sy.internal", dns.TypeA, wait), dns.RcodeNameError)
	wantAnswer(t, "site A: deeper name", query(t, siteA, hostA, edge4, "x.laptop-7.sy.internal", dns.TypeA, wait), dns.RcodeNameError)
	wantAnswer(t, "site A: outside the zone", query(t, siteA, hostA, edge4, "example.org", dns.TypeA, wait), dns.RcodeRefused)
	// Per vnet: site A (default) does not see lab-pc (other), site B does,
	// and site B does not see laptop-7.
	wantAnswer(t, "site A: lab-pc of vnet other", query(t, siteA, hostA, edge4, "lab-pc.sy.internal", dns.TypeA, wait), dns.RcodeNameError)
	wantAnswer(t, "site B: lab-pc", query(t, siteB, hostB, edge4, "lab-pc.sy.internal", dns.TypeA, wait), dns.RcodeSuccess, labIP.String())
	wantAnswer(t, "site B: laptop-7 of vnet default", query(t, siteB, hostB, edge4, "laptop-7.sy.internal", dns.TypeA, wait), dns.RcodeNameError)
	// Devices ask too, from their overlay address.
	wantAnswer(t, "lab-pc: itself", query(t, labPC, labIP, edge4, "lab-pc.sy.internal", dns.TypeA, wait), dns.RcodeSuccess, labIP.String())
	wantAnswer(t, "lab-pc: laptop-7", query(t, labPC, labIP, edge4, "laptop-7.sy.internal", dns.TypeA, wait), dns.RcodeNameError)

	// A source site A may not send from: the router drops it, no answer.
	if m := query(t, siteA, netip.MustParseAddr("10.2.0.9"), edge4, "laptop-7.sy.internal", dns.TypeA, 300*time.Millisecond); m != nil {
		t.Fatalf("a spoofed query was answered:\n%s", m)
	}
	// UDP to another port of the edge's address: nothing.
	siteA.send(t, packettest.UDP(packettest.IP{Src: hostA, Dst: edge4}, 40053, 54, []byte("not dns")))
	if p := siteA.recv(300 * time.Millisecond); p != nil && len(p) > 28 && binary.BigEndian.Uint16(p[20:22]) == 54 {
		t.Fatalf("an answer from port 54: % x", p)
	}

	// The zone follows the registry.
	if _, err := l.reg.SetDNSZone(ctx, "names.example"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new zone", 5*time.Second, func() bool { return l.dp.dns.names.Load().zone == "names.example." })
	wantAnswer(t, "site A: new zone", query(t, siteA, hostA, edge4, "laptop-7.names.example", dns.TypeA, wait), dns.RcodeSuccess, laptopIP.String())
	wantAnswer(t, "site A: old zone", query(t, siteA, hostA, edge4, "laptop-7.sy.internal", dns.TypeA, wait), dns.RcodeRefused)

	// Rate limit: a burst far above dnsBurst gets no more than the bucket holds.
	before := l.dp.dns.answered.Load()
	q := new(dns.Msg)
	q.SetQuestion("laptop-7.names.example.", dns.TypeA)
	buf, _ := q.Pack()
	for range 3 * dnsBurst {
		siteB.send(t, packettest.UDP(packettest.IP{Src: hostB, Dst: edge4}, 40053, 53, buf))
	}
	eventually(t, "the burst is handled", 5*time.Second, func() bool {
		return l.dp.dns.answered.Load()+l.dp.dns.limited.Load() >= before+3*dnsBurst
	})
	if n := l.dp.dns.answered.Load() - before; n > dnsBurst+dnsRate {
		t.Fatalf("answered %d of %d queries in a burst; the bucket holds %d", n, 3*dnsBurst, dnsBurst)
	}
	if l.dp.dns.limited.Load() == 0 {
		t.Fatal("nothing was rate limited")
	}
}

// TestDNSAnswerSizes: a name holds at most dnsMaxAnswers addresses, whose
// answer fits 512 bytes (compressed) without EDNS; a query with EDNS gets
// an OPT back.
func TestDNSAnswerSizes(t *testing.T) {
	var devices []model.Device
	for i := range dnsMaxAnswers + 4 {
		devices = append(devices, model.Device{Name: "many", IP: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})})
	}
	names, _ := buildNames(registry.Snapshot{Rev: 1, Devices: devices}, nil, func(uuid.UUID) uint32 { return 0 })
	q := new(dns.Msg)
	q.SetQuestion("many.sy.internal.", dns.TypeAAAA)
	buf, _ := q.Pack()
	m := new(dns.Msg)
	ans := answerQuery(buf, names, 0)
	if err := m.Unpack(ans); err != nil {
		t.Fatal(err)
	}
	if len(m.Answer) != dnsMaxAnswers || m.Truncated || len(ans) > 512 || m.IsEdns0() != nil {
		t.Fatalf("%d answers, truncated %v, %d bytes, opt %v", len(m.Answer), m.Truncated, len(ans), m.IsEdns0())
	}
	q.SetEdns0(4096, false)
	buf, _ = q.Pack()
	m = new(dns.Msg)
	if err := m.Unpack(answerQuery(buf, names, 0)); err != nil {
		t.Fatal(err)
	}
	if m.IsEdns0() == nil || m.Truncated || len(m.Answer) != dnsMaxAnswers {
		t.Fatalf("with EDNS: opt %v, truncated %v, %d answers", m.IsEdns0(), m.Truncated, len(m.Answer))
	}
}

// FuzzAnswerDNS: whatever arrives at the edge's address, parsing it as a
// UDP query and answering it never panics, and every answer is a DNS
// message in a well-formed UDP packet back to the sender.
func FuzzAnswerDNS(f *testing.F) {
	names, _ := buildNames(registry.Snapshot{Rev: 1, Devices: []model.Device{{Name: "laptop-7", IP: netip.MustParseAddr("100.96.0.2")}}}, nil, func(uuid.UUID) uint32 { return 0 })
	q := new(dns.Msg)
	q.SetQuestion("laptop-7.sy.internal.", dns.TypeA)
	buf, _ := q.Pack()
	src, dst := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("100.96.0.1")
	f.Add(packettest.UDP(packettest.IP{Src: src, Dst: dst}, 40053, 53, buf))
	f.Add(packettest.UDP(packettest.IP{Src: netip.MustParseAddr("2001:db8:1::3"), Dst: model.EdgeAddress6}, 40053, 53, buf))
	f.Add(packettest.UDP(packettest.IP{Src: src, Dst: dst}, 40053, 53, []byte{0, 1, 0, 0, 0, 1}))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		s, d, sport, payload, ok := udpTo(pkt, dnsPort)
		if !ok {
			return
		}
		msg := answerQuery(payload, names, 0)
		if msg == nil {
			return
		}
		var m dns.Msg
		if err := m.Unpack(msg); err != nil || !m.Response || len(msg) > dnsMaxUDP {
			t.Fatalf("answer (%d bytes) does not parse as a response: %v", len(msg), err)
		}
		reply := udpReply(d, s, dnsPort, sport, msg)[wireguard.Headroom:]
		if err := packettest.Verify(reply); err != nil {
			t.Fatalf("reply packet: %v", err)
		}
	})
}
