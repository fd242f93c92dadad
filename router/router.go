package router

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/router/flow"
)

// Verdict is what to do with a packet.
type Verdict uint8

// Verdicts.
const (
	// Drop: discard the packet; a counter says why.
	Drop Verdict = iota
	// Forward: send Packet[:Len] (TTL already decremented) to Decision.To.
	Forward
	// Reply: send Decision.Reply, an ICMP error, back to the sender.
	Reply
	// Local: the packet is addressed to the edge itself (its ICMP source
	// address); Packet[:Len] is for the edge's own services, such as heartbeats.
	Local
	// ForwardFragments: Packet[:Len] (TTL already decremented), an IPv4
	// packet without DF larger than the MTU of Decision.To, goes to To as
	// fragments of at most Decision.MTU bytes each (see Fragment).
	ForwardFragments
)

// Reason says why a packet was dropped or answered with an ICMP error.
type Reason uint8

// Reasons, each with a counter.
const (
	ReasonMalformed   Reason = iota // not a well-formed IPv4 or IPv6 packet
	ReasonSpoofed                   // the source is not one the peer may send from
	ReasonNoRoute                   // no route for the destination in the peer's virtual network
	ReasonTTLExceeded               // the TTL or hop limit ran out
	ReasonTunnelDown                // the destination tunnel has no replica up
	ReasonLoop                      // the destination is the sender itself
	ReasonNoVNet                    // the peer's virtual network has no table
	ReasonLinkLocal                 // link-local or multicast: never routed (e.g. a TUN's IPv6 neighbor discovery)
	ReasonPolicy                    // a network policy blocks the flow
	ReasonTransit                   // came over a trunk for a session on yet another edge: no transit
	ReasonTooBig                    // larger than the destination session's MTU and not to be fragmented (DF, IPv6)
	numReasons
)

var reasonNames = [numReasons]string{"malformed", "spoofed", "no_route", "ttl_exceeded", "tunnel_down", "loop", "no_vnet", "link_local", "policy", "transit", "too_big"}

// String names the reason, as the counters do.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Decision is the outcome of Route.
type Decision struct {
	Verdict Verdict
	// To is the peer to send to: the destination for Forward, the sender for Reply.
	To *Peer
	// Len is the IP packet's length from its header (the input may carry padding).
	Len int
	// Reply is the ICMP error to send for Reply, built in the caller's buffer.
	Reply []byte
	// Reason is set for Drop and Reply.
	Reason Reason
	// MTU is the largest fragment for ForwardFragments: the MTU of To.
	MTU int
}

// Config configures a Router.
type Config struct {
	// ICMPSource4 and ICMPSource6 are the edge's own addresses: ICMP errors
	// come from them, and packets to them are Local. An invalid address
	// disables errors for that family.
	ICMPSource4, ICMPSource6 netip.Addr
	// Overlay is the range device overlay addresses come from. Like the
	// edge's own addresses, it is never a connector's source, whatever the
	// connector's routes cover (an egress site routes 0.0.0.0/0), and an
	// address in it that no device holds is never routed to a tunnel.
	Overlay netip.Prefix
	// EdgeBlock6 holds the IPv6 addresses of the cluster's edges (besides
	// ICMPSource6, each edge's own, where it answers heartbeats before
	// routing): like the overlay range, never a connector's source, and
	// never routed to a tunnel, whatever its routes cover.
	EdgeBlock6 netip.Prefix
	// ICMPRate bounds the ICMP errors generated per second (burst of the
	// same size); 0 means 100.
	ICMPRate int
	// MaxFlows bounds the flow table; 0 means 1<<18 flows.
	MaxFlows int
	// Timeouts are the flows' idle timeouts; zero means flow.DefaultTimeouts.
	Timeouts flow.Timeouts
	// Clock, if set, returns the time in unix nanoseconds for flow
	// timestamps; nil means time.Now. The edge passes a coarse clock, cheaper
	// per packet where reading the system clock is slow.
	Clock func() int64
	// OnFlow, if set, receives every flow's start and end, from the packet
	// path and from ExpireFlows: it must not block (queue and write elsewhere).
	OnFlow func(FlowEvent)
}

// Router routes packets between peers by the current Table.
type Router struct {
	cfg     Config
	table   atomic.Pointer[Table]
	drops   [numReasons]atomic.Uint64
	fwd     atomic.Uint64
	replies atomic.Uint64
	frags   atomic.Uint64 // packets forwarded as fragments
	pol     policyState
	// local counts packets for the edge itself; every other packet in is
	// counted as forwarded or as dropped, so packets in are their sum.
	local atomic.Uint64
	// Bytes in (from peers) and out (forwarded).
	rxBytes, fwdBytes atomic.Uint64

	icmpMu     sync.Mutex
	icmpTokens float64
	icmpLast   time.Time
}

// New returns a Router with an empty table.
func New(cfg Config) *Router {
	if cfg.ICMPRate <= 0 {
		cfg.ICMPRate = 100
	}
	r := &Router{cfg: cfg, icmpTokens: float64(cfg.ICMPRate)}
	r.table.Store(&Table{})
	r.initFlows()
	return r
}

// SetTable swaps in a new table; packets routed after it returns use it.
func (r *Router) SetTable(t *Table) { r.table.Store(t) }

// Stats are the router's counters.
type Stats struct {
	Forwarded uint64            `json:"forwarded"`
	Replied   uint64            `json:"icmp_errors"` // ICMP errors generated
	Dropped   map[string]uint64 `json:"dropped"`     // by reason
	// Fragmented counts the forwarded IPv4 packets (without DF) that were
	// larger than their destination session's MTU and went as fragments.
	Fragmented uint64      `json:"fragmented"`
	Policy     PolicyStats `json:"policy"`
	// Received counts every packet peers sent in (forwarded, dropped, or for
	// the edge itself); ReceivedBytes and ForwardedBytes their IP lengths.
	Received       uint64 `json:"received"`
	ReceivedBytes  uint64 `json:"received_bytes"`
	ForwardedBytes uint64 `json:"forwarded_bytes"`
}

// Stats returns a snapshot of the counters.
func (r *Router) Stats() Stats {
	s := Stats{Forwarded: r.fwd.Load(), Replied: r.replies.Load(), Dropped: map[string]uint64{}, Policy: r.policyStats(),
		Fragmented: r.frags.Load(), Received: r.local.Load(), ReceivedBytes: r.rxBytes.Load(), ForwardedBytes: r.fwdBytes.Load()}
	s.Received += s.Forwarded
	for i := range r.drops {
		n := r.drops[i].Load()
		s.Dropped[Reason(i).String()] = n
		s.Received += n
	}
	return s
}

// Dropped returns the number of packets dropped for reason.
func (r *Router) Dropped(reason Reason) uint64 { return r.drops[reason].Load() }

// Route decides what happens to pkt, an IP packet that from sent. On Forward
// it has decremented the TTL in pkt. icmp is scratch space for an ICMP error
// (IcmpBufSize bytes suffice); Decision.Reply points into it. Route is safe
// for concurrent use and does not allocate, except for a flow's first packet
// (its flow table entry).
func (r *Router) Route(from *Peer, pkt []byte, icmp []byte) Decision {
	r.rxBytes.Add(uint64(len(pkt)))
	h, ok := parse(pkt)
	if !ok {
		return r.drop(ReasonMalformed)
	}
	if !routable(h.src) || !routable(h.dst) {
		return r.drop(ReasonLinkLocal)
	}
	t := r.table.Load()
	vnet := from.VNet()
	if int(vnet) >= len(t.vnets) && from.Kind == Connector {
		return r.drop(ReasonNoVNet)
	}

	// Anti-spoofing. A client sends from its overlay address only. A connector
	// sends from its site: never from a device's or the edge's address, and
	// the source must route back to its own tunnel in its virtual network
	// (strict reverse-path check).
	switch from.Kind {
	case Client:
		if h.src != from.Overlay {
			return r.drop(ReasonSpoofed)
		}
	case Connector:
		if r.edgeOwned(h.src) {
			return r.drop(ReasonSpoofed)
		}
		d, ok := t.vnets[vnet].Lookup(h.src)
		if !ok || d.tunnel != from.Tunnel {
			return r.drop(ReasonSpoofed)
		}
	default:
		return r.drop(ReasonSpoofed)
	}

	if h.dst == r.cfg.ICMPSource4 || h.dst == r.cfg.ICMPSource6 {
		r.local.Add(1)
		return Decision{Verdict: Local, To: from, Len: h.length}
	}
	if h.ttl <= 1 {
		return r.icmpError(ReasonTTLExceeded, from, pkt[:h.length], h, icmp)
	}
	d, ok := r.lookupDst(t, vnet, h.dst)
	if !ok {
		return r.icmpError(ReasonNoRoute, from, pkt[:h.length], h, icmp)
	}
	to := d.pick(false)
	if to == nil {
		return r.icmpError(ReasonTunnelDown, from, pkt[:h.length], h, icmp)
	}
	if to == from || (from.Kind == Connector && d.tunnel == from.Tunnel) {
		return r.drop(ReasonLoop) // back into the site it came from
	}
	if dec, pass := r.filter(from, to, pkt, h, icmp, ""); !pass {
		return dec
	}
	if mtu := linkMTU(to.MTU(), h.v6); mtu > 0 && h.length > mtu {
		if h.v6 || dontFragment(pkt) {
			return r.tooBig(from, pkt[:h.length], h, mtu, icmp)
		}
		decrementTTL(pkt, false)
		return r.fragment(h, to, mtu)
	}
	return r.forward(pkt, h, to)
}

// forward sends pkt, which fits to's MTU, on to whole.
func (r *Router) forward(pkt []byte, h header, to *Peer) Decision {
	decrementTTL(pkt, h.v6)
	r.fwd.Add(1)
	r.fwdBytes.Add(uint64(h.length))
	return Decision{Verdict: Forward, To: to, Len: h.length}
}

// fragment forwards an IPv4 packet without DF that is larger than mtu as
// fragments of at most mtu bytes; an mtu too small for any fragment drops it.
func (r *Router) fragment(h header, to *Peer, mtu int) Decision {
	if mtu < h.ihl+8 {
		return r.drop(ReasonTooBig)
	}
	r.fwd.Add(1)
	r.frags.Add(1)
	r.fwdBytes.Add(uint64(h.length))
	return Decision{Verdict: ForwardFragments, To: to, Len: h.length, MTU: mtu}
}

// lookupDst finds where packets for dst go in virtual network vnet: a
// device's overlay address from any vnet, else the vnet's longest prefix
// match, never for an address in the overlay range that no device holds or
// one of the edges' own.
func (r *Router) lookupDst(t *Table, vnet uint32, dst netip.Addr) (*dest, bool) {
	if d, ok := t.overlay.Lookup(dst); ok {
		return d, true
	}
	if int(vnet) >= len(t.vnets) || r.cfg.Overlay.Contains(dst) || r.cfg.EdgeBlock6.Contains(dst) {
		return nil, false
	}
	return t.vnets[vnet].Lookup(dst)
}

// edgeOwned reports whether a is in the device overlay range or is one of
// the edges' own addresses: what no connector may send from.
func (r *Router) edgeOwned(a netip.Addr) bool {
	return r.cfg.Overlay.Contains(a) || a == r.cfg.ICMPSource4 || a == r.cfg.ICMPSource6 || r.cfg.EdgeBlock6.Contains(a)
}

func (r *Router) drop(reason Reason) Decision {
	r.drops[reason].Add(1)
	return Decision{Verdict: Drop, Reason: reason}
}

// icmpError answers pkt with an ICMP error when that is allowed and within
// the rate limit, and drops it otherwise.
func (r *Router) icmpError(reason Reason, from *Peer, pkt []byte, h header, buf []byte) Decision {
	return r.icmpErrorMTU(reason, from, pkt, h, 0, buf)
}

// minIPv6MTU is the IPv6 minimum link MTU.
const minIPv6MTU = 1280

// linkMTU is the MTU a session of mtu has for an IPv4 or IPv6 packet: an
// IPv6 link is never smaller than 1280 (RFC 8200), so an IPv6 sender is
// never asked for less and an IPv6 packet of up to 1280 bytes goes on a
// smaller session too, its outer datagram fragmenting on the underlay.
func linkMTU(mtu int, v6 bool) int {
	if v6 && mtu > 0 && mtu < minIPv6MTU {
		return minIPv6MTU
	}
	return mtu
}

// tooBig answers pkt, larger than mtu and not to be fragmented, with ICMPv4
// Fragmentation Needed or ICMPv6 Packet Too Big naming mtu (RFC 1191, 8201).
func (r *Router) tooBig(from *Peer, pkt []byte, h header, mtu int, buf []byte) Decision {
	return r.icmpErrorMTU(ReasonTooBig, from, pkt, h, mtu, buf)
}

// icmpErrorMTU is icmpError with the MTU that a too-big error names.
func (r *Router) icmpErrorMTU(reason Reason, from *Peer, pkt []byte, h header, mtu int, buf []byte) Decision {
	src := r.cfg.ICMPSource4
	if h.v6 {
		src = r.cfg.ICMPSource6
	}
	if !src.IsValid() || !mayAnswer(pkt, h) || !r.icmpAllowed() {
		return r.drop(reason)
	}
	reply := buildICMPError(buf, reason, src, pkt, h, mtu)
	if reply == nil {
		return r.drop(reason)
	}
	r.drops[reason].Add(1) // the original is dropped either way
	r.replies.Add(1)
	return Decision{Verdict: Reply, To: from, Reply: reply, Reason: reason}
}

// icmpAllowed takes a token from the ICMP error bucket.
func (r *Router) icmpAllowed() bool {
	r.icmpMu.Lock()
	defer r.icmpMu.Unlock()
	now := time.Now()
	rate := float64(r.cfg.ICMPRate)
	r.icmpTokens = min(rate, r.icmpTokens+now.Sub(r.icmpLast).Seconds()*rate)
	r.icmpLast = now
	if r.icmpTokens < 1 {
		return false
	}
	r.icmpTokens--
	return true
}

// header is what the router reads from an IP header.
type header struct {
	v6       bool
	src, dst netip.Addr
	ttl      uint8
	proto    uint8 // IPv4 protocol or IPv6 next header
	length   int   // total length per the header
	ihl      int   // IPv4 header length; 40 for IPv6
	fragment bool  // IPv4 non-first fragment
}

// parse validates the fixed IP header; it reports false for anything malformed.
func parse(pkt []byte) (h header, ok bool) {
	if len(pkt) < 1 {
		return h, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return h, false
		}
		h.ihl = int(pkt[0]&0x0f) * 4
		h.length = int(binary.BigEndian.Uint16(pkt[2:4]))
		if h.ihl < 20 || h.length < h.ihl || h.length > len(pkt) {
			return h, false
		}
		h.ttl, h.proto = pkt[8], pkt[9]
		h.fragment = binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0
		h.src = netip.AddrFrom4([4]byte(pkt[12:16]))
		h.dst = netip.AddrFrom4([4]byte(pkt[16:20]))
		return h, true
	case 6:
		if len(pkt) < 40 {
			return h, false
		}
		h.v6, h.ihl = true, 40
		h.length = 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if h.length > len(pkt) {
			return h, false
		}
		h.ttl, h.proto = pkt[7], pkt[6]
		h.src = netip.AddrFrom16([16]byte(pkt[8:24]))
		h.dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		return h, true
	}
	return h, false
}

// dontFragment reports whether IPv4 packet pkt has the DF flag.
func dontFragment(pkt []byte) bool { return pkt[6]&0x40 != 0 }

// routable reports whether the edge may route an address at all: not
// link-local, multicast, loopback or unspecified.
func routable(a netip.Addr) bool {
	return !(a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsLoopback() || a.IsUnspecified() ||
		a.IsInterfaceLocalMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}))
}

// decrementTTL lowers the TTL (hop limit) by one, updating the IPv4 header
// checksum incrementally (RFC 1624).
func decrementTTL(pkt []byte, v6 bool) {
	if v6 {
		pkt[7]--
		return
	}
	old := binary.BigEndian.Uint16(pkt[8:10])
	pkt[8]--
	updated := binary.BigEndian.Uint16(pkt[8:10])
	sum := uint32(^binary.BigEndian.Uint16(pkt[10:12])) + uint32(^old) + uint32(updated)
	sum = (sum & 0xffff) + (sum >> 16)
	sum = (sum & 0xffff) + (sum >> 16)
	binary.BigEndian.PutUint16(pkt[10:12], ^uint16(sum))
}
