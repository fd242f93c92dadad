package edge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/router/policy"
	"github.com/switchyard/switchyard/transport/heartbeat"
	"github.com/switchyard/switchyard/transport/masque"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// A peer that sends heartbeats is down once it misses its detect time (its
// interval × multiplier, 500 ms by default). A connector that does not (one
// older than heartbeats) is down when nothing authenticated arrived from it
// for livenessTimeout, three keepalive intervals; a device that does not (a
// stock WireGuard client) is down when its WireGuard session expires. The edge checks every
// livenessTick, so traffic fails over within detect time + livenessTick. A
// tunnel's active replica that goes down with no other replica up keeps its
// traffic while its WireGuard session lasts (see elect).
const (
	livenessTimeout = 3*model.KeepaliveInterval + model.KeepaliveInterval/2
	livenessTick    = 25 * time.Millisecond
)

// dataplane joins the WireGuard endpoint and the router: every decrypted
// packet is routed by the session it came from and sent on, in place.
type dataplane struct {
	log    *slog.Logger
	ep     *wireguard.Endpoint
	router *router.Router
	reg    *registry.Registry
	flows  *flowLog
	clock  *coarseClock
	// applied is the latest applied snapshot's summary, and changedAt when
	// the change feed delivered a change not applied yet, for metrics.
	applied   atomic.Pointer[applied]
	changedAt atomic.Int64
	// policyKey is what the current rule set was compiled from.
	policyKey []byte

	// applyMu serializes applying snapshots (follow's, and expiry's again
	// at a session's end); raw is the last snapshot as read, expired
	// devices included (guarded by applyMu).
	applyMu sync.Mutex
	raw     registry.Snapshot
	expiry  expiry

	// mu guards the session directory: its indexes below, and each
	// session's election state. Heartbeats and packets do not take it.
	mu sync.Mutex
	// byKey holds the WireGuard sessions by agent key, agents every session of
	// an agent (WireGuard first, then MASQUE) by connector or device id,
	// and tunnels every replica session per tunnel, for its election.
	byKey   map[wireguard.PublicKey]*session
	agents  map[uuid.UUID][]*session
	tunnels map[router.TunnelID][]*session
	// override is the replica an operator made active by hand, per tunnel.
	override map[router.TunnelID]*session
	wheel    wheel                // heard sessions at the moment they would stop being heard
	cands    []candidate          // one tunnel's replicas, for its election (scratch)
	vnets    map[uuid.UUID]uint32 // stable router index per vnet
	rev      int64                // revision of the applied snapshot
	last     registry.Snapshot    // the applied snapshot: its routes build the table

	// tableMu serializes table builds; tableWant counts the requests and
	// tableBuilt is the last request a build covered (guarded by tableMu).
	tableMu    sync.Mutex
	tableWant  atomic.Uint64
	tableBuilt uint64

	// registry, when the edge is one of a cluster's, records the sessions
	// that are up in the cluster's session registry, as edgeName's.
	registry sessionRegistry
	edgeName string
	// draining: the edge is stopping; every heartbeat reply says so (drain.go).
	draining atomic.Bool
	serial   uint64 // numbers the sessions, for their registry keys; guarded by mu

	// trunks are the sessions to the cluster's other edges, by name;
	// viewed is the cluster's session view as last read, and remote a
	// record for each session in it that another edge holds (guarded by
	// mu). vkeys names the vnets on trunks (see trunk.go).
	trunks map[string]*trunk
	viewed []model.Session
	remote []*session
	// lost are the view's records that went with their edge's lease (see
	// trunk.go, "Split brain"); elsewhere the connectors whose session
	// another edge lists as active, live: none of this edge's replicas of
	// theirs is held (replicas.go). Guarded by mu.
	lost      []model.Session
	elsewhere map[uuid.UUID]bool
	vkeys     atomic.Pointer[vnetKeys]

	// self4 and self6 are the edge's own addresses, where heartbeats go;
	// own4 and own6 are this edge's alone in its cluster (invalid for a
	// single edge), where it answers heartbeats too.
	self4, self6 netip.Addr
	own4, own6   netip.Addr
	// overlay is the device overlay range (no connector host is named in it).
	overlay netip.Prefix
	// heartbeats counts the probes answered; sentMissed the packets forwarded
	// to a replica that missed its heartbeats but is its tunnel's only one.
	heartbeats, sentMissed atomic.Uint64

	// mtu is the inner MTU a new agent session starts with (--mtu; less
	// on MASQUE and trunks): each session keeps its own (router.Peer.MTU),
	// which path MTU discovery may lower or raise later.
	mtu int

	// dns answers the overlay's names at the edge's own address (dns.go).
	dns overlayDNS

	scratch sync.Pool // *batch: per-Receive scratch, since Receive runs on several goroutines at once
	wg      sync.WaitGroup
}

// batch is the scratch space of one Receive call.
type batch struct {
	bufs [][]byte
	icmp [][]byte // ICMP error buffers with headroom for the transport header
	// groups are the packets bound for WireGuard sessions, one Send each
	// (see add); their slices are kept for the next call.
	groups []sendGroup
	// cache holds the batch's last forwarded flows (router.FlowCache).
	cache router.FlowCache
	// frags are fragment buffers (fragHeadroom in front), nfrag of them in
	// use by this call: each its own array, as Send may use a buffer up to
	// its capacity.
	frags [][]byte
	nfrag int
}

// fragHeadroom is the room in front of a fragment: a transport header and,
// toward a session on another edge, the trunk header.
const fragHeadroom = wireguard.Headroom + trunkHeaderSize

// fragBuf returns the batch's next fragment buffer, with fragHeadroom
// bytes, mtu bytes and wireguard.Tailroom.
func (b *batch) fragBuf(mtu int) []byte {
	if b.nfrag == len(b.frags) {
		b.frags = append(b.frags, nil)
	}
	if need := fragHeadroom + mtu + wireguard.Tailroom; cap(b.frags[b.nfrag]) < need {
		b.frags[b.nfrag] = make([]byte, need)
	}
	buf := b.frags[b.nfrag]
	b.nfrag++
	return buf[:cap(buf)]
}

// sessionMTUs is what the edge's sessions start with when the edge says
// mtu (--mtu): WireGuard mtu, MASQUE no more than one QUIC datagram takes,
// a trunk (toward a session another edge holds) mtu less its header. An mtu
// of 0 (a data plane built without one, in tests) means no limit.
func sessionMTUs(mtu int) (wg, masq, trunk int) {
	return mtu, min(mtu, masque.MTU), mtu - trunkHeaderSize
}

func newDataplane(log *slog.Logger, reg *registry.Registry, r *router.Router) *dataplane {
	d := &dataplane{log: log, reg: reg, router: r, byKey: map[wireguard.PublicKey]*session{}, agents: map[uuid.UUID][]*session{},
		tunnels: map[router.TunnelID][]*session{}, override: map[router.TunnelID]*session{}, vnets: map[uuid.UUID]uint32{},
		trunks: map[string]*trunk{}}
	d.vkeys.Store(&vnetKeys{})
	d.scratch.New = func() any { return &batch{} }
	d.expiry.kick = make(chan struct{}, 1)
	d.wheel.at = time.Now().UnixNano()
	return d
}

// Receive implements wireguard.Receiver: route each packet, then send runs of
// packets bound for the same session together.
func (d *dataplane) Receive(pkts []wireguard.Packet) {
	b := d.scratch.Get().(*batch)
	defer d.scratch.Put(b)
	for len(b.icmp) < len(pkts) {
		b.icmp = append(b.icmp, make([]byte, wireguard.Headroom+router.IcmpBufSize+wireguard.Tailroom))
	}
	b.nfrag = 0
	for i, p := range pkts {
		var to *wireguard.Session
		var buf []byte
		from, _ := p.Session.Value().(*session)
		if from == nil {
			if t, ok := p.Session.Value().(*trunk); ok {
				to, buf = d.fromTrunk(t, p, b)
			}
			if to == nil {
				continue
			}
		} else if probe, ok := d.heartbeatProbe(p.Data()); ok {
			to = p.Session
			buf = heartbeat.AppendReply(b.icmp[i][:wireguard.Headroom], p.Data(), d.probe(from, probe))
		} else {
			icmp := b.icmp[i][wireguard.Headroom : wireguard.Headroom+router.IcmpBufSize]
			dec := d.router.RouteCached(&b.cache, from.peer, p.Data(), icmp)
			switch dec.Verdict {
			case router.Forward:
				if dec.To.Missed() {
					d.sentMissed.Add(1)
				}
				dst := dec.To.Out.(*session)
				if dst.remote != "" {
					if to, buf = d.toTrunk(p, dec.Len, from, dst); to == nil {
						continue
					}
					break
				}
				wl, ok := dst.link.(wgLink)
				if !ok { // another transport: no batching with WireGuard sends
					dst.link.send(p.Buf[:p.Off+dec.Len], p.Off, from)
					continue
				}
				to = wl.s
				buf = p.Buf[p.Off-wireguard.Headroom : p.Off+dec.Len]
			case router.ForwardFragments:
				d.sendFragments(b, p.Data()[:dec.Len], dec, from)
				continue
			case router.Reply:
				to = p.Session
				buf = b.icmp[i][:wireguard.Headroom+len(dec.Reply)]
			case router.Local: // the edge's own address: heartbeats were answered above; DNS
				if reply := d.answerDNS(from, p.Data()[:dec.Len]); reply != nil {
					from.link.send(reply, wireguard.Headroom, nil)
				}
				continue
			default:
				continue
			}
		}
		b.add(to, buf)
	}
	d.router.Flush(&b.cache)
	d.sendGroups(b)
}

// sendGroup is a Receive call's packets for one WireGuard session.
type sendGroup struct {
	s    *wireguard.Session
	bufs [][]byte
}

// groupScan is how many of the newest groups add looks through for the
// packet's session before it starts another group.
const groupScan = 8

// add queues buf for s. It joins the newest of s's groups if that is among
// the last groupScan, or else starts a group, sent after the ones before it:
// so the packets toward one session keep their order, while those of a
// batch that interleaves sessions (a TCP flow's data one way and its ACKs
// the other) still leave in as few Sends, and as large UDP GSO bursts, as
// they arrived in.
func (b *batch) add(s *wireguard.Session, buf []byte) {
	for i := len(b.groups) - 1; i >= max(0, len(b.groups)-groupScan); i-- {
		if g := &b.groups[i]; g.s == s {
			g.bufs = append(g.bufs, buf)
			return
		}
	}
	if len(b.groups) < cap(b.groups) {
		b.groups = b.groups[:len(b.groups)+1]
	} else {
		b.groups = append(b.groups, sendGroup{})
	}
	g := &b.groups[len(b.groups)-1]
	g.s = s
	g.bufs = append(g.bufs[:0], buf)
}

// sendGroups sends every group in the order they were started.
func (d *dataplane) sendGroups(b *batch) {
	for i := range b.groups {
		g := &b.groups[i]
		d.ep.Send(g.s, g.bufs, wireguard.Headroom) // drops are counted by the endpoint
		clear(g.bufs)
		g.s, g.bufs = nil, g.bufs[:0]
	}
	b.groups = b.groups[:0]
}

// sendFragments sends pkt to dec.To as fragments of at most dec.MTU bytes,
// in b's fragment buffers: those for a WireGuard session join b's groups
// (sendGroups sends them), others go at once.
func (d *dataplane) sendFragments(b *batch, pkt []byte, dec router.Decision, from *session) {
	dst := dec.To.Out.(*session)
	wl, batched := dst.link.(wgLink)
	for off := 0; ; {
		fb := b.fragBuf(dec.MTU)
		n, next := router.Fragment(fb[fragHeadroom:fragHeadroom+dec.MTU], pkt, dec.MTU, off)
		if n == 0 {
			return
		}
		if batched {
			b.add(wl.s, fb[fragHeadroom-wireguard.Headroom:fragHeadroom+n])
		} else {
			dst.link.send(fb[:fragHeadroom+n], fragHeadroom, from)
		}
		if next == 0 {
			return
		}
		off = next
	}
}

// heartbeatProbe reads a heartbeat probe out of pkt if it is one addressed
// to the edge's own address. Probes are answered before the router sees
// them, so whatever their source: the session they arrived on already proves
// who sent them, and the reply goes back into that session only, so a forged
// source reaches no one else. This is what lets a connector whose host has
// no address inside its site's prefixes (which the anti-spoofing check would
// refuse) prove it is alive; anything else addressed to the edge is routed
// and source-checked as usual.
func (d *dataplane) heartbeatProbe(pkt []byte) (heartbeat.Message, bool) {
	if len(pkt) < 1 {
		return heartbeat.Message{}, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return heartbeat.Message{}, false
		}
		if dst := netip.AddrFrom4([4]byte(pkt[16:20])); dst != d.self4 && dst != d.own4 {
			return heartbeat.Message{}, false
		}
	case 6:
		if len(pkt) < 40 {
			return heartbeat.Message{}, false
		}
		if dst := netip.AddrFrom16([16]byte(pkt[24:40])); dst != d.self6 && dst != d.own6 {
			return heartbeat.Message{}, false
		}
	default:
		return heartbeat.Message{}, false
	}
	m, ok := heartbeat.ParsePacket(pkt)
	if ok {
		d.heartbeats.Add(1)
	}
	return m, ok
}

// Backoff of follow while the store cannot answer: waits double from
// followMinBackoff to followMaxBackoff, each drawn from [d/2, d) so that the
// edges of a cluster do not all come back to etcd in the same instant.
const (
	followMinBackoff = 250 * time.Millisecond
	followMaxBackoff = 5 * time.Second
)

// follow applies the control plane's state now and after every change, until
// ctx ends. While the store cannot answer (etcd down or without quorum) the
// last applied state stays in force and follow tries again with backoff, so
// the edge catches up by itself when the store is back. It returns an error
// only once the store is closed.
func (d *dataplane) follow(ctx context.Context) error {
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.expireSessions(ctx) }()
	var wait time.Duration // the current backoff; 0 while the store answers
	for ctx.Err() == nil {
		err := d.followFrom(ctx, func() {
			if wait > 0 {
				d.log.Info("following the control plane again")
				wait = 0
			}
		})
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, store.ErrClosed):
			return err
		case err != nil:
			wait = min(max(2*wait, followMinBackoff), followMaxBackoff)
			retry := wait/2 + rand.N(wait/2)
			d.log.Warn("control plane unreachable; forwarding on the last configuration", "err", err, "retry_in", retry.Round(time.Millisecond))
			select {
			case <-time.After(retry):
			case <-ctx.Done():
			}
		}
	}
	return nil
}

// followFrom applies a snapshot, calling applied, then every change after
// it. It returns nil when the feed must be followed again from a fresh
// snapshot (history compacted) or ctx ended, and the store's error when it
// could not read or the feed failed.
func (d *dataplane) followFrom(ctx context.Context, applied func()) error {
	snap, err := d.reg.Snapshot(ctx)
	if err != nil {
		return err
	}
	d.apply(snap)
	applied()
	changes, err := d.reg.Store().Watch(ctx, snap.Rev)
	if err != nil {
		return err
	}
	for c := range changes {
		if c.Err != nil && !errors.Is(c.Err, store.ErrCompacted) {
			return c.Err
		}
		d.noteChange()
		if c.Err != nil {
			return nil // compacted: start over from a fresh snapshot
		}
		// Coalesce a burst of changes into one rebuild.
		for drained := false; !drained; {
			select {
			case _, ok := <-changes:
				drained = !ok
			default:
				drained = true
			}
		}
		snap, err := d.reg.Snapshot(ctx)
		if err != nil {
			return err
		}
		d.apply(snap)
	}
	return nil
}

// apply brings the session directory and the routing table up to a
// snapshot: sessions of new agents are added, those of agents that left are
// removed (their MASQUE sessions closed), and the others keep their record,
// liveness and election state. Devices whose user's session ended are left
// out, and applied again at the next session's end (expiry.go).
func (d *dataplane) apply(s registry.Snapshot) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.raw = s
	d.applyLive(s, time.Now())
}

// applyLive is apply of s without the devices whose session ended by now;
// d.applyMu must be held.
func (d *dataplane) applyLive(s registry.Snapshot, now time.Time) {
	s, next := liveSessions(s, now)
	d.expiry.set(next)
	defer d.noteApplied(s, time.Now())
	d.mu.Lock()
	gone := d.applyLocked(s)
	d.setNamesLocked()
	d.applyPolicies(s)
	d.mu.Unlock()
	for _, g := range gone {
		if ml, ok := g.link.(masqueLink); ok {
			ml.s.Close()
		}
	}
	d.rebuildRemote() // and the table
	d.log.Debug("data plane updated", "rev", s.Rev, "sessions", len(s.Connectors)+len(s.Devices), "routes", len(s.Routes))
}

// agentRecord is what a snapshot says of one agent: its identity for the
// router, and its WireGuard key.
type agentRecord struct {
	id      uuid.UUID
	key     wireguard.PublicKey
	host    string
	vnet    uint32
	vnetID  uuid.UUID
	name    string
	kind    router.Kind
	tunnel  router.TunnelID
	overlay netip.Addr
	user    string
	// ident is a device's identity snapshot for policies; nil for a connector.
	ident *policy.Identity
}

// newPeer returns the router identity of the agent.
func (a *agentRecord) newPeer() *router.Peer {
	p := &router.Peer{Name: a.name, Kind: a.kind, Tunnel: a.tunnel, Overlay: a.overlay, User: a.user}
	if a.kind == router.Client {
		p.Device = a.id
	}
	p.SetIdentity(a.ident)
	p.SetVNet(a.vnet)
	return p
}

// applyLocked is apply's directory part, with d.mu held; it returns the
// sessions it removed, for the caller to close after unlocking.
func (d *dataplane) applyLocked(s registry.Snapshot) (gone []*session) {
	d.last = s
	d.rev = s.Rev
	for _, v := range s.VNets {
		if _, ok := d.vnets[v.ID]; !ok {
			d.vnets[v.ID] = uint32(len(d.vnets))
		}
	}
	d.buildVNetKeysLocked()
	want := make(map[wireguard.PublicKey]bool, len(s.Connectors)+len(s.Devices))
	idents := make(map[uuid.UUID]*policy.Identity, len(s.Devices))
	for _, a := range d.agentsOf(s) {
		a := &a
		want[a.key] = true
		if a.ident != nil {
			idents[a.id] = a.ident
		}
		cur := d.byKey[a.key]
		if cur != nil && !sameAgent(cur, a) {
			gone = append(gone, d.removeAgentLocked(cur.id)...)
			cur = nil
		}
		if cur == nil {
			cur = d.addWireGuardLocked(a)
			if cur == nil {
				continue
			}
		}
		for _, ss := range d.agents[a.id] {
			ss.peer.SetVNet(a.vnet)
			ss.peer.SetIdentity(a.ident) // groups and posture change in place; applyPolicies starts a generation
			ss.host = a.host
			if ss.vnet != a.vnetID {
				ss.vnet = a.vnetID
				d.publishLocked(ss) // a device that switched vnet
			}
		}
	}
	for key, ss := range d.byKey {
		if !want[key] {
			gone = append(gone, d.removeAgentLocked(ss.id)...)
		}
	}
	// Sessions other edges hold take the new identity now too, before
	// applyPolicies starts the generation that re-evaluates their flows
	// (rebuildRemote replaces their records only afterwards).
	for _, r := range d.remote {
		if id := idents[r.id]; id != nil && r.peer.Kind == router.Client {
			r.peer.SetIdentity(id)
		}
	}
	return gone
}

// agentsOf lists the agents of a snapshot, skipping (and logging) those whose
// key is not a WireGuard key.
func (d *dataplane) agentsOf(s registry.Snapshot) []agentRecord {
	tunnelVNet := map[uuid.UUID]uuid.UUID{}
	var defaultVNet uuid.UUID
	for _, v := range s.VNets {
		if v.IsDefault {
			defaultVNet = v.ID
		}
	}
	for _, rt := range s.Routes {
		tunnelVNet[rt.TunnelID] = rt.VNetID
	}
	names := map[uuid.UUID]string{}
	for _, t := range s.Tunnels {
		names[t.ID] = t.Name
	}
	out := make([]agentRecord, 0, len(s.Connectors)+len(s.Devices))
	for _, c := range s.Connectors {
		key, err := wireguard.ParsePublicKey(c.PublicKey)
		if err != nil {
			d.log.Warn("skipping connector with a bad key", "connector", c.ID, "err", err)
			continue
		}
		vnet, ok := tunnelVNet[c.TunnelID]
		if !ok {
			vnet = defaultVNet
		}
		out = append(out, agentRecord{id: c.ID, key: key, host: c.Hostname, vnet: d.vnets[vnet], vnetID: vnet,
			name: names[c.TunnelID], kind: router.Connector, tunnel: router.TunnelID(c.TunnelID)})
	}
	for _, dev := range s.Devices {
		key, err := wireguard.ParsePublicKey(dev.Key)
		if err != nil {
			d.log.Warn("skipping device with a bad key", "device", dev.ID, "err", err)
			continue
		}
		out = append(out, agentRecord{id: dev.ID, key: key, vnet: d.vnets[dev.VNetID], vnetID: dev.VNetID,
			name: dev.Name, kind: router.Client, overlay: dev.IP, user: dev.User, ident: deviceIdentity(&dev)})
	}
	return out
}

// sameAgent reports whether session s still stands for agent a: the same
// id and routing identity (a device keeps its overlay address and user, a
// connector its tunnel). Anything else takes a new record.
func sameAgent(s *session, a *agentRecord) bool {
	p := s.peer
	return s.id == a.id && p.Kind == a.kind && p.Tunnel == a.tunnel && p.Overlay == a.overlay && p.User == a.user
}

// addWireGuardLocked authorizes agent a's key at the endpoint and adds its
// WireGuard session; d.mu must be held. It returns nil if the endpoint
// refused the key.
func (d *dataplane) addWireGuardLocked(a *agentRecord) *session {
	s := newSession(a.newPeer(), a.id, nil)
	ws, err := d.ep.AddPeer(wireguard.PeerConfig{PublicKey: a.key, Value: s})
	if err != nil {
		d.log.Warn("adding a WireGuard peer", "id", a.id, "err", err)
		return nil
	}
	s.link, s.key, s.host, s.vnet = wgLink{ep: d.ep, s: ws}, a.key, a.host, a.vnetID
	mtu, _, _ := sessionMTUs(d.mtu)
	s.peer.SetMTU(mtu)
	ws.SetMTU(mtu)                   // the padding cap; a discovered MTU lowers both (onPathMTU)
	if m := ws.ReverseMTU(); m > 0 { // an update of a peer that kept its session
		s.peer.SetMTU(min(mtu, m))
		ws.SetMTU(min(mtu, m))
	}
	d.byKey[a.key] = s
	d.addLocked(s)
	return s
}

// addLocked indexes a new session; d.mu must be held. A WireGuard session
// goes first among its agent's sessions.
func (d *dataplane) addLocked(s *session) {
	if _, ok := s.link.(wgLink); ok {
		d.agents[s.id] = append([]*session{s}, d.agents[s.id]...)
	} else {
		d.agents[s.id] = append(d.agents[s.id], s)
	}
	if s.peer.Kind == router.Connector {
		d.tunnels[s.peer.Tunnel] = append(d.tunnels[s.peer.Tunnel], s)
	}
}

// removeLocked takes one session out of the directory, the one place that
// does; d.mu must be held. The router stops picking it at once; the caller
// rebuilds the table.
func (d *dataplane) removeLocked(s *session) {
	s.gone.Store(true)
	s.peer.SetUp(false)
	s.peer.SetActive(false)
	d.publishLocked(s)
	if d.byKey[s.key] == s {
		delete(d.byKey, s.key)
		d.ep.RemovePeer(s.key)
	}
	d.agents[s.id] = without(d.agents[s.id], s)
	if len(d.agents[s.id]) == 0 {
		delete(d.agents, s.id)
	}
	if s.peer.Kind == router.Connector {
		t := s.peer.Tunnel
		if d.tunnels[t] = without(d.tunnels[t], s); len(d.tunnels[t]) == 0 {
			delete(d.tunnels, t)
		}
		if d.override[t] == s {
			delete(d.override, t)
		}
	}
}

// removeAgentLocked removes every session of agent id and returns them.
func (d *dataplane) removeAgentLocked(id uuid.UUID) []*session {
	gone := slices.Clone(d.agents[id])
	for _, s := range gone {
		d.removeLocked(s)
	}
	return gone
}

// without returns ss without s, in place.
func without(ss []*session, s *session) []*session {
	if i := slices.Index(ss, s); i >= 0 {
		ss = slices.Delete(ss, i, i+1)
	}
	return ss
}

// rebuildTable builds the routing table from the applied snapshot's routes
// and the directory's sessions, and swaps it in. Concurrent calls coalesce:
// a caller whose request an ongoing build already covers does not build
// again, so a burst of sessions opening costs a build or two, not one each.
func (d *dataplane) rebuildTable() {
	want := d.tableWant.Add(1)
	d.tableMu.Lock()
	defer d.tableMu.Unlock()
	if d.tableBuilt >= want {
		return
	}
	covers := d.tableWant.Load()
	d.mu.Lock()
	b := router.NewTableBuilder()
	for _, rt := range d.last.Routes {
		b.AddRoute(d.vnets[rt.VNetID], rt.Network, router.TunnelID(rt.TunnelID))
	}
	// In snapshot order, each agent's WireGuard session before its MASQUE
	// ones: the first session that is up gets an agent's packets.
	add := func(id uuid.UUID) {
		for _, s := range d.agents[id] {
			if s.peer.Kind == router.Connector {
				b.AddReplica(s.peer)
			} else {
				b.AddClient(s.peer)
			}
		}
	}
	for _, c := range d.last.Connectors {
		add(c.ID)
	}
	for _, dev := range d.last.Devices {
		add(dev.ID)
	}
	// Sessions other edges hold: the router prefers a local session of the
	// same tunnel or device.
	for _, s := range d.remote {
		if s.peer.Kind == router.Connector {
			b.AddReplica(s.peer)
		} else {
			b.AddClient(s.peer)
		}
	}
	d.mu.Unlock()
	d.router.SetTable(b.Build())
	d.tableBuilt = covers
}

// lastSeen reports when each device was last heard from, for the API.
func (d *dataplane) lastSeen() map[uuid.UUID]time.Time {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[uuid.UUID]time.Time{}
	for id, ss := range d.agents {
		for _, s := range ss {
			if s.peer.Kind != router.Client {
				continue
			}
			if _, ws := s.link.(wgLink); !ws && !s.peer.Up() {
				continue // a MASQUE session counts while it is up
			}
			if t := s.link.lastReceived(now); !t.IsZero() && t.After(out[id]) {
				out[id] = t.UTC()
			}
		}
	}
	return out
}

// lastHandshakes reports when this edge last completed a WireGuard
// handshake with each device, for the API.
func (d *dataplane) lastHandshakes() map[uuid.UUID]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[uuid.UUID]time.Time{}
	for id, ss := range d.agents {
		for _, s := range ss {
			wl, ok := s.link.(wgLink)
			if !ok || s.peer.Kind != router.Client {
				continue
			}
			if t := wl.s.LastHandshake(); !t.IsZero() && t.After(out[id]) {
				out[id] = t.UTC()
			}
		}
	}
	return out
}

// pathMTUs reports what path MTU discovery found on each device's
// WireGuard session, for the API.
func (d *dataplane) pathMTUs() map[uuid.UUID]model.PathMTU {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[uuid.UUID]model.PathMTU{}
	for id, ss := range d.agents {
		for _, s := range ss {
			if m := s.pathMTU(); m != nil && s.peer.Kind == router.Client {
				out[id] = *m
				break // the first is the WireGuard one (addLocked)
			}
		}
	}
	return out
}

// connections lists the live replicas of each tunnel, the active one first,
// then by how long they have been up, for the API.
func (d *dataplane) connections() map[uuid.UUID][]model.Connection {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[uuid.UUID][]model.Connection{}
	for t, ss := range d.tunnels {
		for _, s := range ss {
			if s.peer.Up() {
				out[uuid.UUID(t)] = append(out[uuid.UUID(t)], d.connection(s))
			}
		}
	}
	for _, cs := range out {
		slices.SortFunc(cs, func(a, b model.Connection) int {
			if (a.State == model.ReplicaActive) != (b.State == model.ReplicaActive) {
				if a.State == model.ReplicaActive {
					return -1
				}
				return 1
			}
			return a.OpenedAt.Compare(b.OpenedAt)
		})
	}
	return out
}

// startDataplane opens the WireGuard endpoint with the edge's key and a router.
func startDataplane(cfg Config, id *identity, reg *registry.Registry, log *slog.Logger) (*dataplane, error) {
	port, bind, err := wgBind(cfg.WGListen)
	if err != nil {
		return nil, err
	}
	flows := newFlowLog(log.With("component", "flowlog"), filepath.Join(cfg.DataDir, flowLogFile))
	clock := newCoarseClock()
	self4, self6 := model.EdgeAddress(cfg.OverlayRange), model.EdgeAddress6
	r := router.New(router.Config{ICMPSource4: self4, ICMPSource6: self6, Overlay: cfg.OverlayRange, EdgeBlock6: model.EdgeBlock6,
		MaxFlows: cmp.Or(cfg.MaxFlows, DefaultMaxFlows), OnFlow: flows.enqueue, Clock: clock.Now})
	d := newDataplane(log.With("component", "dataplane"), reg, r)
	d.flows, d.clock = flows, clock
	d.self4, d.self6 = self4, self6
	d.overlay = cfg.OverlayRange
	d.mtu = cmp.Or(cfg.MTU, DefaultMTU)
	d.own4, d.own6 = id.heartbeat4, id.heartbeat6
	ep, err := wireguard.New(wireguard.Config{
		PrivateKey: wireguard.PrivateKey(id.wgPrivate),
		ListenPort: port,
		Bind:       wireguard.NewProbeBind(bind), // RPROBEs go with DF, data without
		Receiver:   d,
		OnPathMTU:  d.onPathMTU,
		Logger:     log, // the endpoint adds component=wireguard
		// Room for a trunk header in front of every packet from an agent.
		ReceiveHeadroom: trunkHeaderSize,
	})
	if err != nil {
		return nil, fmt.Errorf("start WireGuard on %s: %w", cfg.WGListen, err)
	}
	d.ep = ep
	return d, nil
}

// onPathMTU applies the edge→agent inner MTU an agent's path MTU probes
// found to its session: the router's MTU for it (larger packets are
// fragmented or answered with ICMP) and the endpoint's padding cap.
func (d *dataplane) onPathMTU(ws *wireguard.Session, mtu int) {
	s, ok := ws.Value().(*session)
	if !ok {
		return
	}
	conf, _, _ := sessionMTUs(d.mtu)
	mtu = min(conf, mtu)
	s.peer.SetMTU(mtu)
	ws.SetMTU(mtu)
}

// wgBind parses --wg-listen HOST:PORT: an empty or unspecified host
// (0.0.0.0, ::) listens on every address with the endpoint's default bind
// (nil: OffloadBind on Linux, UDP offloads and all); an IP address listens
// on that address alone (AddrBind, without offloads).
func wgBind(listen string) (uint16, conn.Bind, error) {
	if listen == "" {
		return 0, nil, nil
	}
	host, p, err := net.SplitHostPort(listen)
	port := 0
	if err == nil {
		port, err = strconv.Atoi(p)
	}
	if err != nil || port < 0 || port > 65535 {
		return 0, nil, fmt.Errorf("--wg-listen %q is not HOST:PORT", listen)
	}
	if host == "" {
		return uint16(port), nil, nil
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return 0, nil, fmt.Errorf("--wg-listen %q: the host must be an IP address (or empty for every address)", listen)
	}
	if addr.IsUnspecified() {
		return uint16(port), nil, nil
	}
	bind, err := wireguard.NewAddrBind(addr)
	if err != nil {
		return 0, nil, fmt.Errorf("--wg-listen %q: %w", listen, err)
	}
	return uint16(port), bind, nil
}

// Stats are the data plane's counters, as GET /v1/stats shows them.
type Stats struct {
	Router    router.Stats    `json:"router"`
	WireGuard wireguard.Stats `json:"wireguard"`
	Peers     int             `json:"peers"`
	PeersUp   int             `json:"peers_up"`
	// MASQUE counts the live MASQUE sessions (their peers are not in Peers).
	MASQUE int `json:"masque_sessions"`
	// MASQUETraffic sums the live MASQUE sessions' counters (RxPackets
	// well below QUIC.PacketsReceived: datagrams dropped in quic-go's or
	// HTTP/3's receive queues).
	MASQUETraffic masque.Stats `json:"masque_traffic"`
	// Heartbeats counts the heartbeat probes the edge answered (the router
	// does not see them).
	Heartbeats uint64 `json:"heartbeats"`
	// SentMissed counts packets forwarded to a replica that missed its
	// heartbeats, because its tunnel had no other replica up.
	SentMissed uint64 `json:"sent_to_missed_replica"`
	// Trunks are the sessions to the cluster's other edges, by edge.
	Trunks []TrunkStats `json:"trunks,omitempty"`
	// DNSAnswered counts the overlay-name queries the edge answered, and
	// DNSLimited those dropped by the per-session rate limit.
	DNSAnswered uint64 `json:"dns_answered"`
	DNSLimited  uint64 `json:"dns_rate_limited"`
	// DNSRefusedSiteAddrs is how many site addresses connectors report
	// that the names leave out, lying outside the connector's own site.
	DNSRefusedSiteAddrs int64 `json:"dns_refused_site_addrs"`
}

// stats returns the data plane's counters.
func (d *dataplane) stats() any {
	st := Stats{Router: d.router.Stats(), WireGuard: d.ep.Stats(), Heartbeats: d.heartbeats.Load(), SentMissed: d.sentMissed.Load(),
		DNSAnswered: d.dns.answered.Load(), DNSLimited: d.dns.limited.Load(),
		DNSRefusedSiteAddrs: d.dns.refused.Load()}
	d.mu.Lock()
	defer d.mu.Unlock()
	st.Peers = len(d.byKey)
	for _, s := range d.byKey {
		if s.peer.Up() {
			st.PeersUp++
		}
	}
	st.MASQUE, st.MASQUETraffic = d.masqueSessionsLocked()
	st.Trunks = d.trunkStatsLocked()
	return st
}

// masqueSessionsLocked counts the live MASQUE sessions and sums their
// counters; d.mu must be held.
func (d *dataplane) masqueSessionsLocked() (int, masque.Stats) {
	n, sum := 0, masque.Stats{}
	for _, ss := range d.agents {
		for _, s := range ss {
			if ml, ok := s.link.(masqueLink); ok {
				n++
				sum = sum.Add(ml.s.Stats())
			}
		}
	}
	return n, sum
}
