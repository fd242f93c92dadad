package edge

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/internal/checksum"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// Overlay names: the edge answers DNS queries (UDP) to its own address,
// port 53, for NAME.ZONE, A and AAAA, where NAME is a device's name as a
// label (model.DNSLabel) and ZONE the registry's zone (sy.internal unless
// set). A connector host is named too, by its hostname as a label, at the
// site addresses its connector reports that lie in its own site (see
// buildNames). Names are per virtual network: a query sees the devices and
// connector hosts of the vnet its sender sends into. The router has checked the
// query's source (anti-spoofing) before it reaches here; the reply goes
// from the address the query was sent to, to its source, into the session
// it came from. Only packets to the edge's own address that are UDP to
// port 53 come here: nothing else on the packet path pays for DNS.
const (
	dnsPort = 53
	// dnsTTL is the TTL of answers and of the SOA that negative answers carry.
	dnsTTL = 30
	// dnsRate and dnsBurst bound the queries answered per session per second.
	dnsRate, dnsBurst = 50, 100
	// dnsMaxAnswers bounds the addresses of one name (devices sharing it).
	dnsMaxAnswers = 16
	// dnsMaxUDP is the largest answer sent to a query with EDNS.
	dnsMaxUDP = 1232
)

// overlayNames is what the edge answers, built from one snapshot and
// swapped whole: per router vnet index, each label's addresses.
type overlayNames struct {
	zone   string // FQDN, lower case: "sy.internal."
	serial uint32
	byVNet map[uint32]map[string][]netip.Addr
}

// overlayDNS is the data plane's DNS responder state.
type overlayDNS struct {
	names atomic.Pointer[overlayNames]
	// answered and limited count the queries answered and those dropped by
	// the per-session rate limit.
	answered, limited atomic.Uint64
	// refused is how many connector site addresses the names leave out
	// (outside the connector's site); refusedSeen those already logged,
	// under the data plane's mu.
	refused     atomic.Int64
	refusedSeen map[refusedAddr]bool

	mu      sync.Mutex
	buckets map[*session]*dnsBucket
}

// dnsBucket is one session's token bucket.
type dnsBucket struct {
	tokens float64
	last   time.Time
}

// refusedAddr is a site address a connector reported that the edge will
// not publish: outside the prefixes routed to its own tunnel.
type refusedAddr struct {
	connector uuid.UUID
	addr      netip.Addr
}

// buildNames makes the names of a snapshot's devices and connector hosts;
// vnetIndex maps a vnet id to the router's index, and owned holds what no
// connector host may be named at (model.EdgeOwned). A connector host's
// address counts only where the longest prefix routed in its vnet is one of
// its own tunnel's: a connector names nothing outside its own site. A
// device's name wins over a connector host's of the same label in a vnet.
// It returns the addresses refused.
func buildNames(s registry.Snapshot, owned []netip.Prefix, vnetIndex func(uuid.UUID) uint32) (*overlayNames, []refusedAddr) {
	zone := s.DNSZone
	if zone == "" {
		zone = model.DefaultDNSZone
	}
	n := &overlayNames{zone: dns.Fqdn(strings.ToLower(zone)), serial: uint32(s.Rev), byVNet: map[uint32]map[string][]netip.Addr{}}
	add := func(v uint32, label string, a netip.Addr) {
		m := n.byVNet[v]
		if m == nil {
			m = map[string][]netip.Addr{}
			n.byVNet[v] = m
		}
		if len(m[label]) < dnsMaxAnswers {
			m[label] = append(m[label], a)
		}
	}
	for _, d := range s.Devices {
		if label := model.DNSLabel(d.Name); label != "" && d.IP.IsValid() {
			add(vnetIndex(d.VNetID), label, d.IP)
		}
	}
	devices := map[uint32]map[string]bool{} // the labels devices hold
	for v, m := range n.byVNet {
		devices[v] = map[string]bool{}
		for label := range m {
			devices[v][label] = true
		}
	}
	var refused []refusedAddr
	for _, c := range s.Connectors {
		vnet, ok := connectorVNet(s, c.TunnelID)
		label := model.DNSLabel(c.Hostname)
		for _, a := range c.SiteAddrs {
			if !ok || containsAddr(owned, a) || routedTunnel(s.Routes, vnet, a) != c.TunnelID {
				refused = append(refused, refusedAddr{connector: c.ID, addr: a})
				continue
			}
			if v := vnetIndex(vnet); label != "" && !devices[v][label] {
				add(v, label, a)
			}
		}
	}
	return n, refused
}

// connectorVNet is the vnet a tunnel's routes are in; false for a tunnel
// without routes, whose connectors have no site to name.
func connectorVNet(s registry.Snapshot, tunnel uuid.UUID) (uuid.UUID, bool) {
	for _, rt := range s.Routes {
		if rt.TunnelID == tunnel {
			return rt.VNetID, true
		}
	}
	return uuid.Nil, false
}

// routedTunnel is the tunnel of the longest prefix routed in vnet that
// holds a, or uuid.Nil.
func routedTunnel(routes []model.Route, vnet uuid.UUID, a netip.Addr) uuid.UUID {
	best, bits := uuid.Nil, -1
	for _, rt := range routes {
		if rt.VNetID == vnet && rt.Network.Bits() > bits && rt.Network.Contains(a) {
			best, bits = rt.TunnelID, rt.Network.Bits()
		}
	}
	return best
}

// containsAddr reports whether one of ps holds a.
func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// setNamesLocked rebuilds the names from the applied snapshot; d.mu must be
// held (for d.vnets). It logs each site address refused once, while it is
// reported, and forgets the rate limits of sessions gone.
func (d *dataplane) setNamesLocked() {
	overlay := d.overlay
	if !overlay.IsValid() {
		overlay = model.DefaultOverlayRange
	}
	names, refused := buildNames(d.last, model.EdgeOwned(overlay), func(id uuid.UUID) uint32 { return d.vnets[id] })
	d.dns.names.Store(names)
	d.dns.refused.Store(int64(len(refused)))
	seen := make(map[refusedAddr]bool, len(refused))
	for _, r := range refused {
		if !d.dns.refusedSeen[r] {
			d.log.Warn("not naming a connector host at an address outside its site", "connector", r.connector, "addr", r.addr)
		}
		seen[r] = true
	}
	d.dns.refusedSeen = seen
	d.dns.mu.Lock()
	for s := range d.dns.buckets {
		if s.gone.Load() {
			delete(d.dns.buckets, s)
		}
	}
	d.dns.mu.Unlock()
}

// allow takes a token from s's bucket.
func (o *overlayDNS) allow(s *session, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.buckets == nil {
		o.buckets = map[*session]*dnsBucket{}
	}
	b := o.buckets[s]
	if b == nil {
		b = &dnsBucket{tokens: dnsBurst, last: now}
		o.buckets[s] = b
	}
	b.tokens = min(dnsBurst, b.tokens+now.Sub(b.last).Seconds()*dnsRate)
	b.last = now
	if b.tokens < 1 {
		o.limited.Add(1)
		return false
	}
	b.tokens--
	return true
}

// answerDNS answers pkt, an IP packet the router found addressed to the
// edge, when it is a DNS query over UDP to port 53 from a session within
// its rate: it returns the reply IP packet with wireguard.Headroom bytes in
// front and wireguard.Tailroom spare (off = wireguard.Headroom), or nil.
func (d *dataplane) answerDNS(from *session, pkt []byte) []byte {
	src, dst, sport, payload, ok := udpTo(pkt, dnsPort)
	if !ok {
		return nil
	}
	names := d.dns.names.Load()
	if names == nil || !d.dns.allow(from, time.Now()) {
		return nil
	}
	msg := answerQuery(payload, names, from.peer.VNet())
	if msg == nil {
		return nil
	}
	d.dns.answered.Add(1)
	return udpReply(dst, src, dnsPort, sport, msg)
}

// udpTo parses an unfragmented IPv4 or IPv6 (no extension headers) UDP
// packet to port.
func udpTo(pkt []byte, port uint16) (src, dst netip.Addr, sport uint16, payload []byte, ok bool) {
	var udp []byte
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if pkt[9] != 17 || ihl < 20 || total > len(pkt) || total < ihl+8 || binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
			return src, dst, 0, nil, false
		}
		src, dst = netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		udp = pkt[ihl:total]
	case len(pkt) >= 48 && pkt[0]>>4 == 6:
		total := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if pkt[6] != 17 || total > len(pkt) || total < 48 {
			return src, dst, 0, nil, false
		}
		src, dst = netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		udp = pkt[40:total]
	default:
		return src, dst, 0, nil, false
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if binary.BigEndian.Uint16(udp[2:4]) != port || ulen < 8 || ulen > len(udp) {
		return src, dst, 0, nil, false
	}
	return src, dst, binary.BigEndian.Uint16(udp[0:2]), udp[8:ulen], true
}

// answerQuery answers a DNS message from vnet, or returns nil for one not
// to answer (not a query, unparsable), within 512 bytes or, with EDNS, the
// size the query names (up to dnsMaxUDP).
func answerQuery(q []byte, names *overlayNames, vnet uint32) []byte {
	var req dns.Msg
	if err := req.Unpack(q); err != nil || req.Response {
		return nil
	}
	resp := new(dns.Msg)
	resp.SetReply(&req)
	resp.RecursionAvailable = false
	size := 512
	if opt := req.IsEdns0(); opt != nil {
		size = max(512, min(dnsMaxUDP, int(opt.UDPSize())))
		resp.SetEdns0(dnsMaxUDP, false)
	}
	switch {
	case req.Opcode != dns.OpcodeQuery:
		resp.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1:
		resp.Rcode = dns.RcodeFormatError
	default:
		answerQuestion(resp, req.Question[0], names, vnet)
	}
	resp.Truncate(size)
	buf, err := resp.Pack()
	if err != nil {
		return nil
	}
	return buf
}

// answerQuestion fills resp for one question: REFUSED outside the zone,
// the SOA at its apex, a device's addresses at NAME.ZONE, NXDOMAIN for any
// other name in it, and the SOA in the authority section of every answer
// without records.
func answerQuestion(resp *dns.Msg, q dns.Question, names *overlayNames, vnet uint32) {
	name := strings.ToLower(q.Name)
	if (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) || !dns.IsSubDomain(names.zone, name) {
		resp.Rcode = dns.RcodeRefused
		return
	}
	resp.Authoritative = true
	soa := names.soa()
	if name == names.zone {
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, soa)
		} else {
			resp.Ns = append(resp.Ns, soa)
		}
		return
	}
	label := strings.TrimSuffix(name, "."+names.zone)
	addrs := names.byVNet[vnet][label]
	if strings.Contains(label, ".") || len(addrs) == 0 {
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, soa)
		return
	}
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: dnsTTL}
	for _, a := range addrs {
		switch {
		case a.Is4() && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
			h := hdr
			h.Rrtype = dns.TypeA
			resp.Answer = append(resp.Answer, &dns.A{Hdr: h, A: a.AsSlice()})
		case a.Is6() && (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY):
			h := hdr
			h.Rrtype = dns.TypeAAAA
			resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: h, AAAA: a.AsSlice()})
		}
	}
	if len(resp.Answer) == 0 { // the name exists, without records of that type
		resp.Ns = append(resp.Ns, soa)
	}
}

// soa is the zone's SOA record, its serial the snapshot's revision.
func (n *overlayNames) soa() dns.RR {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: n.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: dnsTTL},
		Ns:  "edge." + n.zone, Mbox: "hostmaster." + n.zone, Serial: n.serial,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: dnsTTL,
	}
}

// udpReply builds an IP packet carrying a UDP datagram from src:sport to
// dst:dport, with wireguard.Headroom in front and wireguard.Tailroom spare.
func udpReply(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	ipLen := 20
	if src.Is6() {
		ipLen = 40
	}
	n := ipLen + 8 + len(payload)
	buf := make([]byte, wireguard.Headroom+n, wireguard.Headroom+n+wireguard.Tailroom)
	p := buf[wireguard.Headroom:]
	udp := p[ipLen:]
	binary.BigEndian.PutUint16(udp[0:2], sport)
	binary.BigEndian.PutUint16(udp[2:4], dport)
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload)))
	copy(udp[8:], payload)
	s, d := src.AsSlice(), dst.AsSlice()
	// The pseudo header: addresses, protocol, UDP length.
	acc := checksum.Sum(s, 0)
	acc = checksum.Sum(d, acc)
	acc += 17 + uint32(8+len(payload))
	sum := ^checksum.Fold(checksum.Sum(udp, acc))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], sum)
	if src.Is4() {
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:4], uint16(n))
		p[8], p[9] = 64, 17
		copy(p[12:16], s)
		copy(p[16:20], d)
		binary.BigEndian.PutUint16(p[10:12], ^checksum.Fold(checksum.Sum(p[:20], 0)))
		return buf
	}
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(8+len(payload)))
	p[6], p[7] = 17, 64
	copy(p[8:24], s)
	copy(p[24:40], d)
	return buf
}
