package router

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/checksum"
	"github.com/switchyard/switchyard/router/flow"
	"github.com/switchyard/switchyard/router/policy"
)

// FlowMeta is what the router attaches to each flow: the facts its rules
// were evaluated on and the peers at both ends.
type FlowMeta struct {
	In       policy.Input
	From, To *Peer
	// Via names the edge a flow's first packet came from over a trunk (the
	// ingress edge, which applied policy); empty for a flow that started
	// on this edge. A flow that leaves over a trunk has a Remote To instead.
	Via string
}

// FlowEntry is a flow as flow logs see it.
type FlowEntry = flow.Entry[FlowMeta]

// FlowEvent is a flow starting (End is nil) or ending.
type FlowEvent struct {
	Flow FlowEntry
	End  *flow.End
}

// policyState is the router's stateful firewall: the current rule set and
// the flow table that caches its decisions.
type policyState struct {
	rules     atomic.Pointer[policy.Set]
	flows     *flow.Table[FlowMeta]
	decisions [2]atomic.Uint64 // [0] blocked, [1] allowed: first packets and re-evaluations
}

func (r *Router) initFlows() {
	if r.cfg.Clock == nil {
		r.cfg.Clock = func() int64 { return time.Now().UnixNano() }
	}
	allowAll, _ := policy.NewSet(nil, true, 0)
	r.pol.rules.Store(allowAll)
	if r.cfg.Timeouts == (flow.Timeouts{}) {
		r.cfg.Timeouts = flow.DefaultTimeouts
	}
	r.pol.flows = flow.New(flow.Config[FlowMeta]{
		Max:      r.cfg.MaxFlows,
		Timeouts: r.cfg.Timeouts,
		OnEnd: func(e *FlowEntry, why flow.End) {
			if r.cfg.OnFlow != nil {
				r.cfg.OnFlow(FlowEvent{Flow: *e, End: &why})
			}
		},
	})
}

// SetPolicies swaps in a compiled rule set; flows decided under an older
// generation are evaluated again on their next packet.
func (r *Router) SetPolicies(s *policy.Set) { r.pol.rules.Store(s) }

// Policies returns the current rule set.
func (r *Router) Policies() *policy.Set { return r.pol.rules.Load() }

// ExpireFlows ends the flows idle past their timeouts (every flow if all) and
// reports them to Config.OnFlow; the edge calls it about once a second.
func (r *Router) ExpireFlows(all bool) int {
	return r.pol.flows.Expire(r.cfg.Clock(), all)
}

// Flows returns copies of the live flows.
func (r *Router) Flows() []FlowEntry { return r.pol.flows.Snapshot(nil) }

// transport is what the router reads from a packet's transport header.
type transport struct {
	proto        uint8 // upper-layer protocol, past IPv6 extension headers
	off          int   // where its header starts
	sport, dport uint16
	flags        uint8 // TCP flags
	ports        bool  // TCP or UDP with a full header: the ports are real
}

// maxExtHeaders bounds the IPv6 extension headers l4 walks.
const maxExtHeaders = 8

// l4 reads the transport header, walking IPv6 hop-by-hop, routing,
// destination options and fragment headers: the ports (ICMP echo
// identifiers for both ports of echo requests and replies) and TCP flags.
// Non-first fragments carry no ports.
func l4(pkt []byte, h header) (t transport) {
	t.proto, t.off = h.proto, h.ihl
	if h.fragment {
		return t
	}
	for i := 0; h.v6 && i < maxExtHeaders; i++ {
		if t.proto != 0 && t.proto != 43 && t.proto != 60 && t.proto != 44 {
			break
		}
		if t.off+8 > h.length {
			return t
		}
		next := pkt[t.off]
		if t.proto == 44 {
			if binary.BigEndian.Uint16(pkt[t.off+2:t.off+4])>>3 != 0 {
				t.proto = next
				return t // a non-first fragment
			}
			t.off += 8
		} else {
			t.off += (int(pkt[t.off+1]) + 1) * 8
		}
		t.proto = next
	}
	if t.off > h.length {
		return t
	}
	b := pkt[t.off:h.length]
	switch t.proto {
	case policy.ProtoTCP, policy.ProtoUDP:
		if len(b) < 8 || (t.proto == policy.ProtoTCP && len(b) < 20) {
			return t
		}
		if t.proto == policy.ProtoTCP {
			t.flags = b[13]
		}
		t.sport, t.dport, t.ports = binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4]), true
	case policy.ProtoICMP, policy.ProtoICMPv6:
		if len(b) >= 8 && (b[0] == 0 || b[0] == 8 || b[0] == 128 || b[0] == 129) {
			id := binary.BigEndian.Uint16(b[4:6])
			t.sport, t.dport = id, id
		}
	}
	return t
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// filter applies policy to a packet that routing would forward from one peer
// to another: it reports whether the packet may pass, and otherwise the
// decision (a drop, or a TCP RST or ICMP error to the sender). A flow is
// its addresses and ports between two parties (Peer.party): a packet belongs
// to it only if it goes from the party that opened it to the one it was
// opened toward, or back. A packet with the same addresses and ports between
// anyone else (a site whose routes cover another's sources) is the first of
// a flow of its own, decided by policy for its own sender; it neither rides
// nor touches the other flow. via is FlowMeta.Via for a packet that came
// over a trunk. The established-flow path does not allocate.
func (r *Router) filter(from, to *Peer, pkt []byte, h header, buf []byte, via string) (Decision, bool) {
	rules := r.pol.rules.Load()
	tp := l4(pkt, h)
	sender, receiver := from.party(), to.party()
	if r.errorOfAllowedFlow(from.VNet(), sender, receiver, pkt, h, tp, rules.Gen) {
		return Decision{}, true // e.g. "fragmentation needed" for a flow that may pass
	}
	k := flow.Key{VNet: from.VNet(), Proto: tp.proto, Src: h.src, Dst: h.dst, SrcPort: tp.sport, DstPort: tp.dport}
	now := r.cfg.Clock()
	v, reply, found := r.pol.flows.Packet(k, sender, receiver, h.length, now, tp.flags&(tcpFIN|tcpRST) != 0)
	if found && v.Gen != rules.Gen {
		if meta, ok := r.pol.flows.Meta(k, sender, receiver); ok {
			// Evaluated again with the current identity of the flow's
			// user: this packet's peers are the live ones (a session the
			// edge rebuilt keeps its party, and so its flows).
			opener, target := from, to
			if reply {
				opener, target = to, from
			}
			meta.In.User, meta.In.Ident = flowIdentity(opener, target)
			v = r.decide(rules, &meta.In)
			r.pol.flows.Redecide(k, sender, receiver, v)
		}
	}
	if !found {
		meta := FlowMeta{In: flowInput(k.VNet, from, to, h, tp), From: from, To: to, Via: via}
		v = r.decide(rules, &meta.In)
		var created bool
		if v, created = r.pol.flows.Insert(k, sender, receiver, meta, v, h.length, now); created && r.cfg.OnFlow != nil {
			e := FlowEntry{Key: k, Meta: meta, Verdict: v, Start: now, Last: now}
			e.Packets[0], e.Bytes[0] = 1, uint64(h.length)
			r.cfg.OnFlow(FlowEvent{Flow: e})
		}
	}
	if v.Allow {
		return Decision{}, true
	}
	if v.Silent || buf == nil || (tp.proto == policy.ProtoTCP && tp.flags&tcpRST != 0) {
		return r.drop(ReasonPolicy), false // a RST is never answered, nor anything without a buffer to answer in
	}
	if tp.proto == policy.ProtoTCP && tp.ports {
		src := r.cfg.ICMPSource4
		if h.v6 {
			src = r.cfg.ICMPSource6
		}
		if !src.IsValid() || !mayAnswer(pkt, h) || !r.icmpAllowed() {
			return r.drop(ReasonPolicy), false
		}
		rst := buildRST(buf, pkt[:h.length], h, tp.off)
		r.drops[ReasonPolicy].Add(1)
		r.replies.Add(1)
		return Decision{Verdict: Reply, To: from, Reply: rst, Reason: ReasonPolicy}, false
	}
	return r.icmpError(ReasonPolicy, from, pkt[:h.length], h, buf), false
}

// flowInput is what policies see of a packet sent by from to to in virtual
// network vnet.
func flowInput(vnet uint32, from, to *Peer, h header, tp transport) policy.Input {
	in := policy.Input{VNet: vnet, Proto: tp.proto, Src: h.src, Dst: h.dst, DstPort: tp.dport,
		HasPorts: tp.ports, Site: from.Kind == Connector, Tunnel: from.Tunnel, Device: from.Device}
	in.User, in.Ident = flowIdentity(from, to)
	return in
}

// flowIdentity returns the user and identity of a flow opened by from
// toward to: the sending device's, or for a flow a site sends to a device
// the destination device's; none between sites. The user is the identity's,
// or the peer's own for a peer without an identity snapshot.
func flowIdentity(from, to *Peer) (string, *policy.Identity) {
	p := from
	if p.Kind != Client {
		if p = to; p == nil || p.Kind != Client {
			return "", nil
		}
	}
	id := p.Identity()
	if id != nil && id.User != "" {
		return id.User, id
	}
	return p.User, id
}

// errorOfAllowedFlow reports whether pkt, sent by party sender to party
// receiver in virtual network vnet, is an ICMP error (destination
// unreachable, time exceeded, parameter problem, packet too big) about a
// packet of an allowed flow: such errors belong to that flow and pass, so
// that path MTU discovery works under a default block. The packet an error
// quotes went the other way, from the error's receiver toward its sender
// (which reports on it from along its path), so only the flow's far end can
// speak for a packet of it; anyone else's error is judged as its own packet.
func (r *Router) errorOfAllowedFlow(vnet uint32, sender, receiver flow.Party, pkt []byte, h header, tp transport, gen uint64) bool {
	b := pkt[min(tp.off, h.length):h.length]
	if len(b) < 8 {
		return false
	}
	switch {
	case tp.proto == policy.ProtoICMP && (b[0] == 3 || b[0] == 11 || b[0] == 12):
	case tp.proto == policy.ProtoICMPv6 && b[0] >= 1 && b[0] <= 4:
	default:
		return false
	}
	inner := b[8:]
	var k flow.Key
	var ports []byte
	switch {
	case !h.v6 && len(inner) >= 20 && inner[0]>>4 == 4:
		ihl := int(inner[0]&0x0f) * 4
		k.Proto, k.Src, k.Dst = inner[9], netip.AddrFrom4([4]byte(inner[12:16])), netip.AddrFrom4([4]byte(inner[16:20]))
		if ihl >= 20 && len(inner) >= ihl+4 {
			ports = inner[ihl : ihl+4]
		}
	case h.v6 && len(inner) >= 40 && inner[0]>>4 == 6:
		k.Proto, k.Src, k.Dst = inner[6], netip.AddrFrom16([16]byte(inner[8:24])), netip.AddrFrom16([16]byte(inner[24:40]))
		if len(inner) >= 44 {
			ports = inner[40:44]
		}
	default:
		return false
	}
	if k.Proto == policy.ProtoTCP || k.Proto == policy.ProtoUDP {
		if ports == nil {
			return false
		}
		k.SrcPort, k.DstPort = binary.BigEndian.Uint16(ports[0:2]), binary.BigEndian.Uint16(ports[2:4])
	}
	k.VNet = vnet
	v, found := r.pol.flows.Lookup(k, receiver, sender)
	return found && v.Allow && v.Gen == gen
}

// decide evaluates the rules and counts the decision.
func (r *Router) decide(rules *policy.Set, in *policy.Input) flow.Verdict {
	d := rules.Evaluate(in)
	if d.Allow {
		r.pol.decisions[1].Add(1)
	} else {
		r.pol.decisions[0].Add(1)
	}
	return flow.Verdict{Allow: d.Allow, Silent: d.Silent, Policy: d.Policy, Gen: rules.Gen}
}

// buildRST writes into buf a TCP RST answering pkt, whose TCP header starts
// at off, as if from its destination (RFC 9293 3.10.7.1): the sender's
// connection fails at once.
func buildRST(buf, pkt []byte, h header, off int) []byte {
	t := pkt[off:]
	seq, ack := binary.BigEndian.Uint32(t[4:8]), binary.BigEndian.Uint32(t[8:12])
	flags := t[13]
	payload := len(t) - int(t[12]>>4)*4
	var rseq, rack uint32
	rflags := uint8(tcpRST)
	if flags&tcpACK != 0 {
		rseq = ack
	} else {
		rack = seq + uint32(max(payload, 0))
		if flags&tcpSYN != 0 {
			rack++
		}
		if flags&tcpFIN != 0 {
			rack++
		}
		rflags |= tcpACK
	}
	ipLen := 20
	if h.v6 {
		ipLen = 40
	}
	out := buf[:ipLen+20]
	clear(out)
	var acc uint32
	if h.v6 {
		out[0] = 0x60
		binary.BigEndian.PutUint16(out[4:6], 20)
		out[6], out[7] = policy.ProtoTCP, 64
		copy(out[8:24], pkt[24:40])
		copy(out[24:40], pkt[8:24])
		acc = checksum.Sum(out[8:40], 0)
	} else {
		out[0] = 0x45
		binary.BigEndian.PutUint16(out[2:4], 40)
		out[8], out[9] = 64, policy.ProtoTCP
		copy(out[12:16], pkt[16:20])
		copy(out[16:20], pkt[12:16])
		binary.BigEndian.PutUint16(out[10:12], ^checksum.Fold(checksum.Sum(out[:20], 0)))
		acc = checksum.Sum(out[12:20], 0)
	}
	o := out[ipLen:]
	copy(o[0:2], t[2:4]) // ports swapped
	copy(o[2:4], t[0:2])
	binary.BigEndian.PutUint32(o[4:8], rseq)
	binary.BigEndian.PutUint32(o[8:12], rack)
	o[12] = 5 << 4
	o[13] = rflags
	acc += uint32(policy.ProtoTCP) + 20
	binary.BigEndian.PutUint16(o[16:18], ^checksum.Fold(checksum.Sum(o, acc)))
	return out
}

// PolicyStats are the policy engine's counters.
type PolicyStats struct {
	Rules         int    `json:"rules"`
	Generation    uint64 `json:"generation"`
	Allowed       uint64 `json:"allowed"` // decisions: first packets and re-evaluations
	Blocked       uint64 `json:"blocked"`
	Flows         int    `json:"flows"`
	FlowEvictions uint64 `json:"flow_evictions"`
}

func (r *Router) policyStats() PolicyStats {
	rules := r.pol.rules.Load()
	return PolicyStats{
		Rules: rules.Len(), Generation: rules.Gen,
		Allowed: r.pol.decisions[1].Load(), Blocked: r.pol.decisions[0].Load(),
		Flows: r.pol.flows.Len(), FlowEvictions: r.pol.flows.Evictions(),
	}
}
