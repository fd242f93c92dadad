package router

import (
	"net/netip"
	"sync/atomic"

	"github.com/switchyard/switchyard/router/flow"
	"github.com/switchyard/switchyard/router/policy"
)

// Kind says what a peer is.
type Kind uint8

// The kinds of peer.
const (
	// Connector is a replica of a tunnel: it sends from its site's prefixes.
	Connector Kind = iota + 1
	// Client is a user device: it sends from its overlay address.
	Client
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Connector:
		return "connector"
	case Client:
		return "client"
	}
	return "unknown"
}

// Peer is the routing identity of one session: who sent a packet and where a
// packet can be handed. The edge owns Peers for as long as their sessions live
// and attaches each to its transport session.
type Peer struct {
	// Name identifies the peer in logs and counters (tunnel or device name).
	Name string
	// Kind is Connector or Client.
	Kind Kind
	// Tunnel is the tunnel a connector belongs to (any comparable key the edge
	// picks); zero for clients.
	Tunnel TunnelID
	// Overlay is a client's overlay address; invalid for connectors.
	Overlay netip.Addr
	// User is the email of a client device's user; empty for connectors.
	User string
	// Device is a client device's id; zero for connectors.
	Device [16]byte
	// Out is the edge's handle to send to this peer (its transport session).
	Out any
	// Remote marks a session another edge of the cluster holds: the edge
	// reaches it over a trunk. The router prefers a local session of the
	// same tunnel or device, and never routes a packet that came over a
	// trunk to a remote one (no transit).
	Remote bool
	// Edge names the edge that holds a Remote peer's session (a constant of
	// the record, read by flow logs, never per packet); empty for a local one.
	Edge string

	vnet    atomic.Uint32 // index of the virtual network it sends into
	up      atomic.Bool   // the session is established
	active  atomic.Bool   // the replica its tunnel's traffic goes to
	missed  atomic.Bool   // up only because its tunnel has no other replica
	standby atomic.Bool   // the agent's standby session: never a destination
	mtu     atomic.Uint32 // the session's inner MTU; 0: no limit
	ident   atomic.Pointer[policy.Identity]
}

// TunnelID names a tunnel inside the router.
type TunnelID [16]byte

// VNet returns the index of the virtual network the peer sends into.
func (p *Peer) VNet() uint32 { return p.vnet.Load() }

// SetVNet moves the peer into virtual network v; packets it sends from then on
// are routed there (a client switching virtual network).
func (p *Peer) SetVNet(v uint32) { p.vnet.Store(v) }

// Up reports whether the peer's session is established.
func (p *Peer) Up() bool { return p.up.Load() }

// SetUp records whether the peer's session is established; the router hands
// packets for a tunnel to its first replica that is up.
func (p *Peer) SetUp(up bool) { p.up.Store(up) }

// Active reports whether the peer is the active replica of its tunnel.
func (p *Peer) Active() bool { return p.active.Load() }

// SetActive marks the peer as its tunnel's active replica, or not; the edge
// keeps at most one active replica per tunnel.
func (p *Peer) SetActive(a bool) { p.active.Store(a) }

// party is who the peer is to the flow table. A flow belongs to the two
// parties its first packet went between, and parties are identities, not
// *Peer pointers: a tunnel's replicas are one party (its tunnel), so the
// replies of a flow still match when they come from, or go to, another
// replica after a failover; a device's sessions (WireGuard and MASQUE, or a
// session the edge rebuilt) are one party (its device id). Two tunnels, or
// two devices, are never one party, however their routes overlap. A client
// without a device id (only tests build those) is known by its overlay
// address, which it alone may send from.
func (p *Peer) party() flow.Party {
	switch {
	case p.Kind == Connector:
		return flow.Party{Kind: uint32(Connector), ID: p.Tunnel}
	case p.Device != [16]byte{}:
		return flow.Party{Kind: uint32(Client), ID: p.Device}
	}
	return flow.Party{Kind: partyByAddress, ID: p.Overlay.As16()}
}

// partyByAddress is the party kind of a client known by its overlay address.
const partyByAddress = 0x80 | uint32(Client)

// Missed reports whether the peer missed its heartbeats and is kept up only
// because its tunnel has no other replica to send to; the edge counts what
// it still sends there.
func (p *Peer) Missed() bool { return p.missed.Load() }

// SetMissed records whether the peer is kept up despite missed heartbeats.
func (p *Peer) SetMissed(m bool) { p.missed.Store(m) }

// Standby reports whether the peer is its agent's standby session (the agent
// keeps sessions to two edges and sends through the other): it is never a
// destination.
func (p *Peer) Standby() bool { return p.standby.Load() }

// SetStandby records whether the peer is its agent's standby session.
func (p *Peer) SetStandby(s bool) { p.standby.Store(s) }

// MTU returns the largest IP packet the peer's session carries; 0 means no
// limit.
func (p *Peer) MTU() int { return int(p.mtu.Load()) }

// SetMTU sets the largest IP packet the peer's session carries (0: no
// limit); it may change at any time (path MTU discovery). A larger IPv4
// packet without DF is fragmented to fit, any other answered with ICMPv4
// Fragmentation Needed or ICMPv6 Packet Too Big.
func (p *Peer) SetMTU(mtu int) { p.mtu.Store(uint32(max(mtu, 0))) }

// Identity returns the client's identity snapshot (user, groups, posture)
// that policies look at; nil for none.
func (p *Peer) Identity() *policy.Identity { return p.ident.Load() }

// SetIdentity swaps in a new identity snapshot, which must not change
// afterwards. The session stays; flows already decided keep their verdict
// until the rule set's generation changes, so the edge starts a new
// generation with every identity change (flows are then re-evaluated with
// the peers' current identities).
func (p *Peer) SetIdentity(id *policy.Identity) { p.ident.Store(id) }
