package router

import (
	"net/netip"

	"github.com/switchyard/switchyard/routing"
)

// Table is an immutable routing snapshot: one longest-prefix-match table per
// virtual network, and the overlay addresses of client devices, which are
// reachable from every virtual network. Build one with a TableBuilder.
type Table struct {
	vnets   []*routing.Table[*dest] // indexed by virtual network index
	overlay routing.Table[*dest]
}

// dest is where packets for a prefix go: a tunnel's replicas, or one client.
type dest struct {
	tunnel   TunnelID
	replicas []*Peer // in preference order; the first that is up gets the packet
	// party stands for the tunnel as the sender of packets that come over
	// a trunk from its replicas on other edges (nil for a client's dest,
	// whose sessions are the party).
	party *Peer
}

// pick returns a local replica that is up (the active one first, else the
// first), else a remote one (likewise), else a remote standby session, or
// nil; with localOnly, never a remote one. A local standby session is never
// picked: its agent drops what it sends. A remote standby is the last resort
// while its agent moves its traffic (the registry has not caught up yet):
// the far edge hands the packet to its own session if the agent made that
// one active meanwhile, and drops it otherwise.
func (d *dest) pick(localOnly bool) *Peer {
	var first, remoteActive, remoteFirst, remoteStandby *Peer
	for _, p := range d.replicas {
		switch {
		case !p.Up():
		case p.Standby():
			if p.Remote && remoteStandby == nil {
				remoteStandby = p
			}
		case !p.Remote && p.Active():
			return p
		case !p.Remote:
			if first == nil {
				first = p
			}
		case p.Active():
			if remoteActive == nil {
				remoteActive = p
			}
		case remoteFirst == nil:
			remoteFirst = p
		}
	}
	switch {
	case first != nil || localOnly:
		return first
	case remoteActive != nil:
		return remoteActive
	case remoteFirst != nil:
		return remoteFirst
	}
	return remoteStandby
}

// TableBuilder assembles a Table; it is not safe for concurrent use.
type TableBuilder struct {
	t       *Table
	tunnels map[tunnelKey]*dest
	clients map[netip.Addr]*dest
}

type tunnelKey struct {
	vnet   uint32
	tunnel TunnelID
}

// NewTableBuilder returns an empty builder.
func NewTableBuilder() *TableBuilder {
	return &TableBuilder{t: &Table{}, tunnels: map[tunnelKey]*dest{}, clients: map[netip.Addr]*dest{}}
}

func (b *TableBuilder) vnet(v uint32) *routing.Table[*dest] {
	for uint32(len(b.t.vnets)) <= v {
		b.t.vnets = append(b.t.vnets, &routing.Table[*dest]{})
	}
	return b.t.vnets[v]
}

func (b *TableBuilder) tunnelDest(v uint32, t TunnelID) *dest {
	k := tunnelKey{v, t}
	d := b.tunnels[k]
	if d == nil {
		d = &dest{tunnel: t, party: &Peer{Kind: Connector, Tunnel: t}}
		d.party.SetVNet(v)
		b.tunnels[k] = d
	}
	return d
}

// AddRoute routes prefix p in virtual network vnet to tunnel t.
func (b *TableBuilder) AddRoute(vnet uint32, p netip.Prefix, t TunnelID) {
	b.vnet(vnet).Insert(p, b.tunnelDest(vnet, t))
}

// AddReplica adds a connector replica of its tunnel in its virtual network.
// Packets for the tunnel go to its active replica (Peer.SetActive) while that
// is up, else to the first replica added that is up.
func (b *TableBuilder) AddReplica(p *Peer) {
	d := b.tunnelDest(p.VNet(), p.Tunnel)
	d.replicas = append(d.replicas, p)
}

// AddClient makes a client device reachable at its overlay address from every
// virtual network. A device connected over two transports (WireGuard and
// MASQUE) is added once per session; the first added that is up gets its
// packets.
func (b *TableBuilder) AddClient(p *Peer) {
	if !p.Overlay.IsValid() {
		return
	}
	if d := b.clients[p.Overlay]; d != nil {
		d.replicas = append(d.replicas, p)
		return
	}
	d := &dest{replicas: []*Peer{p}}
	b.clients[p.Overlay] = d
	b.t.overlay.Insert(netip.PrefixFrom(p.Overlay, p.Overlay.BitLen()), d)
}

// Build returns the table; the builder must not be used afterwards.
func (b *TableBuilder) Build() *Table {
	return b.t
}
