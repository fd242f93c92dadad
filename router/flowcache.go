package router

import (
	"github.com/switchyard/switchyard/router/flow"
	"github.com/switchyard/switchyard/router/policy"
)

// FlowCache remembers the last flows one caller forwarded within a batch,
// so that the flows' following packets skip the anti-spoofing and
// destination lookups and the flow table: a hit checks that the packet has
// the same sender, addresses, ports and protocol as the packet decided
// before it, under the same table and policy generation, and forwards it
// to the same peer, its counts kept to be added to the flow at Flush.
// Only TCP and UDP packets without SYN, FIN or RST and with a TTL to spare
// hit; everything else, and whatever would need an ICMP error or
// fragments, takes the full path.
//
// A FlowCache is one goroutine's: the edge keeps one per Receive call, so
// an entry lives no longer than a batch (what a replica's failover or a
// removed route may leave stale is at most that batch). Call Flush at the
// end of each batch.
type FlowCache struct {
	ents [2]cacheEntry // a TCP flow's two directions interleave in a batch
	next int           // the entry a miss replaces
}

type cacheEntry struct {
	from, to         *Peer
	table            *Table
	rules            *policy.Set
	key              flow.Key
	sender, receiver flow.Party
	packets, bytes   uint64 // hits not yet counted in the flow table
}

// RouteCached is Route with c: a packet of a flow c holds is forwarded
// without the lookups, others are routed by Route and, when forwarded
// whole, remembered.
func (r *Router) RouteCached(c *FlowCache, from *Peer, pkt []byte, icmp []byte) Decision {
	h, ok := parse(pkt)
	if !ok || h.fragment || h.ttl <= 1 || !routable(h.src) || !routable(h.dst) {
		return r.Route(from, pkt, icmp)
	}
	tp := l4(pkt, h)
	if !tp.ports || tp.flags&(tcpSYN|tcpFIN|tcpRST) != 0 {
		return r.Route(from, pkt, icmp)
	}
	t, rules := r.table.Load(), r.pol.rules.Load()
	k := flow.Key{VNet: from.VNet(), Proto: tp.proto, Src: h.src, Dst: h.dst, SrcPort: tp.sport, DstPort: tp.dport}
	for i := range c.ents {
		e := &c.ents[i]
		if e.from != from || e.table != t || e.rules != rules || e.key != k {
			continue
		}
		if mtu := linkMTU(e.to.MTU(), h.v6); mtu > 0 && h.length > mtu {
			break // an ICMP error or fragments: the full path
		}
		r.rxBytes.Add(uint64(len(pkt)))
		e.packets++
		e.bytes += uint64(h.length)
		return r.forward(pkt, h, e.to)
	}
	dec := r.Route(from, pkt, icmp)
	if dec.Verdict == Forward {
		e := &c.ents[c.next]
		c.next = (c.next + 1) % len(c.ents)
		r.flushEntry(e)
		*e = cacheEntry{from: from, to: dec.To, table: t, rules: rules, key: k, sender: from.party(), receiver: dec.To.party()}
	}
	return dec
}

// Flush adds the cached packets to their flows and empties c.
func (r *Router) Flush(c *FlowCache) {
	for i := range c.ents {
		r.flushEntry(&c.ents[i])
		c.ents[i] = cacheEntry{}
	}
}

func (r *Router) flushEntry(e *cacheEntry) {
	if e.packets > 0 {
		r.pol.flows.Count(e.key, e.sender, e.receiver, e.packets, e.bytes, r.cfg.Clock())
	}
	e.packets, e.bytes = 0, 0
}
