package edge

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/transport/heartbeat"
	"github.com/switchyard/switchyard/transport/masque"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// session is one agent session the edge holds: a connector replica's or a
// device's WireGuard or MASQUE session. It is the directory's one record per
// session; its router.Peer (whose Out is the session) is what the router
// sees. An agent may hold several sessions (WireGuard and MASQUE); they share
// its id and are routed as one party.
type session struct {
	peer *router.Peer
	id   uuid.UUID // the connector or device id
	link link
	key  wireguard.PublicKey // the agent's key, for a WireGuard session

	// Liveness, written by heartbeats without any lock.
	lastProbe atomic.Int64  // when the last heartbeat arrived, Unix ns
	detect    atomic.Int64  // the sender's interval × multiplier in ns; 0 before its first heartbeat
	wishes    atomic.Uint32 // what its last heartbeat asked for (see wishesOf)
	heard     atomic.Bool   // at the last check: heard from within its detect time
	gone      atomic.Bool   // removed from the directory

	// Guarded by the dataplane's mutex.
	host    string        // a connector's hostname
	vnet    uuid.UUID     // the virtual network it sends into
	serial  uint64        // names it among the edge's sessions, in the registry
	listed  model.Session // what the session registry holds for it; zero: nothing
	upSince time.Time     // when it last came up; zero while down
	held    bool          // at the last check: not heard, yet kept as its tunnel's only path
	wheeled bool          // in the liveness wheel
	// remote names the edge that holds this session when it is not this
	// one: room for a cluster's view of the sessions of other edges.
	remote string
}

// newSession makes the record of a session of agent id over l, with the
// router identity of p.
func newSession(p *router.Peer, id uuid.UUID, l link) *session {
	s := &session{peer: p, id: id, link: l}
	p.Out = s
	return s
}

// Heartbeat wishes, packed into session.wishes: the priority in the low byte.
const (
	wishPreferred = 1 << 8
	wishLeaving   = 1 << 9
	wishStandby   = 1 << 10 // the agent's standby session: another edge carries its traffic
)

// wishesOf packs what a heartbeat asks for.
func wishesOf(m heartbeat.Message) uint32 {
	w := uint32(m.Priority)
	if m.Flags&heartbeat.Preferred != 0 {
		w |= wishPreferred
	}
	if m.Flags&heartbeat.Leaving != 0 {
		w |= wishLeaving
	}
	if m.Flags&heartbeat.Standby != 0 {
		w |= wishStandby
	}
	return w
}

func (s *session) priority() uint8 { return uint8(s.wishes.Load()) }
func (s *session) preferred() bool { return s.wishes.Load()&wishPreferred != 0 }
func (s *session) leaving() bool   { return s.wishes.Load()&wishLeaving != 0 }

// standby reports whether the agent keeps s as its standby session, to a
// second edge of a cluster: it is never its tunnel's active replica here,
// and the registry lists it as not active, so that the edges send the
// agent's traffic to the edge holding its active session. (What is left for
// the trunks: an edge routes a packet for a replica or device whose active
// session another edge holds across the trunk to that edge, and a device's
// standby session gets no packets but heartbeat replies, since the agent's
// standby WireGuard peer accepts nothing else.)
func (s *session) standby() bool { return s.wishes.Load()&wishStandby != 0 }

// forgetLeaving drops a leaving wish (of a replica no longer heard from).
func (s *session) forgetLeaving() {
	for {
		w := s.wishes.Load()
		if w&wishLeaving == 0 || s.wishes.CompareAndSwap(w, w&^wishLeaving) {
			return
		}
	}
}

// alive reports whether the session was heard from recently at now: its link
// can carry packets and, if the agent sends heartbeats, the last one came
// within its detect time. A device that never sent one (a stock WireGuard
// client, which may stay silent for minutes between keepalives) lives while
// its link can carry packets: WireGuard's own session expiry. A connector
// without heartbeats (older than them) must have been heard from, anything
// authenticated, within livenessTimeout.
func (s *session) alive(now time.Time) bool {
	if !s.link.usable() {
		return false
	}
	if detect := s.detect.Load(); detect > 0 {
		return now.UnixNano()-s.lastProbe.Load() < detect
	}
	if s.peer.Kind == router.Client {
		return true
	}
	return now.Sub(s.link.lastReceived(now)) < livenessTimeout
}

// link is how the edge reaches the agent of one session: one transport session.
type link interface {
	// send hands buf[off:], a packet from session from (nil: the edge
	// itself), to the agent. Drops are counted by the transport.
	send(buf []byte, off int, from *session)
	// remote is the agent's underlay address.
	remote() netip.AddrPort
	// usable reports whether the link can carry packets now.
	usable() bool
	// lastReceived is when the link last received from the agent (now for
	// a transport that keeps no such time but is open).
	lastReceived(now time.Time) time.Time
	// transport names the transport for metrics: "wireguard" or "masque".
	transport() string
}

// wgLink is a WireGuard session of the edge's endpoint.
type wgLink struct {
	ep *wireguard.Endpoint
	s  *wireguard.Session
}

// send needs wireguard.Headroom before off and wireguard.Tailroom of spare
// capacity after buf, or it copies.
func (l wgLink) send(buf []byte, off int, _ *session) {
	if off < wireguard.Headroom || cap(buf)-len(buf) < wireguard.Tailroom {
		b := make([]byte, wireguard.Headroom+len(buf)-off, wireguard.Headroom+len(buf)-off+wireguard.Tailroom)
		copy(b[wireguard.Headroom:], buf[off:])
		buf, off = b, wireguard.Headroom
	}
	l.ep.Send(l.s, [][]byte{buf}, off)
}

func (l wgLink) remote() netip.AddrPort { return l.s.RemoteAddr() }

// usable: a session whose key is in date (RejectAfterTime).
func (l wgLink) usable() bool                     { return l.s.Established() }
func (l wgLink) lastReceived(time.Time) time.Time { return l.s.LastReceived() }
func (wgLink) transport() string                  { return "wireguard" }

// masqueLink is a CONNECT-IP session.
type masqueLink struct{ s *masque.Session }

// send writes the packet as one datagram. The router has already answered
// a packet above the session's MTU (the peer's MTU follows the session's,
// masqueHandler.Open); one that races a change is refused, counted and
// logged by the session (masque.ErrTooBig).
func (l masqueLink) send(buf []byte, off int, _ *session) {
	l.s.WritePacket(buf[off:])
}

func (l masqueLink) remote() netip.AddrPort { return l.s.RemoteAddr() }

// usable: a MASQUE session leaves the directory when QUIC closes it.
func (masqueLink) usable() bool                         { return true }
func (masqueLink) lastReceived(now time.Time) time.Time { return now }
func (masqueLink) transport() string                    { return "masque" }

// pathMTU is what the agent's path MTU probes found on s. On MASQUE, where
// each side's QUIC discovers its own sending direction, the edge knows the
// edge→agent one only (the agent→edge one shows as unknown).
func (s *session) pathMTU() *model.PathMTU {
	if ml, ok := s.link.(masqueLink); ok {
		return &model.PathMTU{EdgeToAgent: ml.s.MTU(), State: model.PathMTUDone}
	}
	wl, ok := s.link.(wgLink)
	if !ok {
		return nil
	}
	m, probed := wl.s.PathMTU()
	if !probed {
		return &model.PathMTU{State: model.PathMTUNotProbed}
	}
	st := &model.PathMTU{AgentToEdge: m.Forward, EdgeToAgent: m.Reverse, State: model.PathMTUDone}
	if m.Forward == 0 || m.Reverse == 0 {
		st.State = model.PathMTUProbing
	}
	return st
}

// sessionRegistry is where a cluster's edges record the sessions they hold
// (cluster.SessionPublisher); Set and Remove never block.
type sessionRegistry interface {
	Set(key string, s model.Session)
	Remove(key string)
}

// registryKey names s among this edge's sessions in the registry.
func (s *session) registryKey() string {
	return fmt.Sprintf("%s/%s/%d", s.id, s.link.transport(), s.serial)
}

// publishLocked brings the registry's record of s up to date: a session that
// is up is listed (with whether it is active), one that is down or gone is
// not; d.mu must be held.
func (d *dataplane) publishLocked(s *session) {
	if d.registry == nil {
		return
	}
	var want model.Session
	if s.peer.Up() && !s.gone.Load() {
		want = model.Session{Edge: d.edgeName, Kind: model.SessionDevice, ID: s.id, VNet: s.vnet,
			Transport: s.link.transport(), Active: !s.standby(), Standby: s.standby(), Since: s.upSince.UTC()}
		if s.peer.Kind == router.Connector {
			want.Kind, want.Tunnel, want.Active = model.SessionConnector, uuid.UUID(s.peer.Tunnel), s.peer.Active()
		}
	}
	if want == s.listed {
		return
	}
	if s.serial == 0 {
		d.serial++
		s.serial = d.serial
	}
	if want == (model.Session{}) {
		d.registry.Remove(s.registryKey())
	} else {
		d.registry.Set(s.registryKey(), want)
	}
	s.listed = want
}

// setRegistry starts (or, with nil, stops) recording this edge's sessions
// in a cluster's session registry, as name's; every session up now is
// recorded at once.
func (d *dataplane) setRegistry(r sessionRegistry, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.registry, d.edgeName = r, name
	if d.flows != nil && name != "" { // kept after a stop, for the flows it flushes
		d.flows.edge.Store(&name)
	}
	for _, ss := range d.agents {
		for _, s := range ss {
			s.listed = model.Session{}
			d.publishLocked(s)
		}
	}
}
