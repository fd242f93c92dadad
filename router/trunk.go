package router

import "github.com/switchyard/switchyard/router/flow"

// RouteTrunk routes pkt, an IP packet that another edge of the cluster
// forwarded over a trunk into virtual network vnet, to a session of this
// edge only: a destination held by another edge is dropped (ReasonTransit),
// so a packet crosses at most one trunk. The sender is derived from the
// source address with this edge's own tables, which every edge builds from
// one configuration: a device by its overlay address, else the tunnel whose
// route covers the source in vnet; a source that is neither is dropped as
// spoofed. The source was checked against the sending session at the
// ingress edge, which also decremented the TTL: the cluster is one hop.
//
// With applied, the ingress edge already evaluated policy: the packet passes,
// and its flow is recorded here as allowed, so that the replies, which this
// edge judges first, belong to it. Without applied, policy is evaluated here.
// No ICMP error is sent back across a trunk: what the router would answer is
// dropped and counted (a packet larger than the destination session's MTU
// too, unless it is IPv4 without DF: that is fragmented). via names the edge
// at the trunk's far end, for the flow's record (FlowMeta.Via): pass a
// constant of the trunk. RouteTrunk does not allocate, except for a flow's
// first packet.
func (r *Router) RouteTrunk(vnet uint32, pkt []byte, via string, applied bool) Decision {
	r.rxBytes.Add(uint64(len(pkt)))
	h, ok := parse(pkt)
	if !ok {
		return r.drop(ReasonMalformed)
	}
	if !routable(h.src) || !routable(h.dst) {
		return r.drop(ReasonLinkLocal)
	}
	t := r.table.Load()
	if int(vnet) >= len(t.vnets) {
		return r.drop(ReasonNoVNet)
	}
	var from *Peer
	if r.cfg.Overlay.Contains(h.src) {
		if d, ok := t.overlay.Lookup(h.src); ok && len(d.replicas) > 0 {
			from = d.replicas[0] // any of the device's sessions: they are one party
		}
	} else if !r.edgeOwned(h.src) {
		if d, ok := t.vnets[vnet].Lookup(h.src); ok {
			from = d.party
		}
	}
	if from == nil {
		return r.drop(ReasonSpoofed)
	}
	if h.dst == r.cfg.ICMPSource4 || h.dst == r.cfg.ICMPSource6 {
		return r.drop(ReasonNoRoute) // the edge's own services answer on the session a packet came by
	}
	d, ok := r.lookupDst(t, vnet, h.dst)
	if !ok {
		return r.drop(ReasonNoRoute)
	}
	to := d.pick(true)
	if to == nil {
		if d.pick(false) != nil {
			return r.drop(ReasonTransit)
		}
		return r.drop(ReasonTunnelDown)
	}
	if to.party() == from.party() {
		return r.drop(ReasonLoop)
	}
	if applied {
		r.admit(vnet, from, to, pkt, h, via)
	} else if dec, pass := r.filter(from, to, pkt, h, nil, via); !pass { // nil: never answered across a trunk
		return dec
	}
	if mtu := linkMTU(to.MTU(), h.v6); mtu > 0 && h.length > mtu {
		if h.v6 || dontFragment(pkt) {
			return r.drop(ReasonTooBig) // not answered across a trunk either
		}
		return r.fragment(h, to, mtu)
	}
	r.fwd.Add(1)
	r.fwdBytes.Add(uint64(h.length))
	return Decision{Verdict: Forward, To: to, Len: h.length}
}

// admit records pkt in its flow, which the ingress edge's policy allowed:
// a new flow starts allowed (its flow log entry names no policy, since the
// deciding one is the ingress edge's), a known one passes whatever this
// edge decided for it, since the ingress edge judged this direction.
func (r *Router) admit(vnet uint32, from, to *Peer, pkt []byte, h header, via string) {
	tp := l4(pkt, h)
	sender, receiver := from.party(), to.party()
	k := flow.Key{VNet: vnet, Proto: tp.proto, Src: h.src, Dst: h.dst, SrcPort: tp.sport, DstPort: tp.dport}
	now := r.cfg.Clock()
	if _, _, found := r.pol.flows.Packet(k, sender, receiver, h.length, now, tp.flags&(tcpFIN|tcpRST) != 0); found {
		return
	}
	meta := FlowMeta{In: flowInput(vnet, from, to, h, tp), From: from, To: to, Via: via}
	v := flow.Verdict{Allow: true, Gen: r.pol.rules.Load().Gen}
	if _, created := r.pol.flows.Insert(k, sender, receiver, meta, v, h.length, now); created && r.cfg.OnFlow != nil {
		e := FlowEntry{Key: k, Meta: meta, Verdict: v, Start: now, Last: now}
		e.Packets[0], e.Bytes[0] = 1, uint64(h.length)
		r.cfg.OnFlow(FlowEvent{Flow: e})
	}
}
