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
	"github.com/switchyard/switchyard/transport/heartbeat"
	"github.com/switchyard/switchyard/transport/masque"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// A peer that sends heartbeats is down once it misses its detect time (its
// interval × multiplier, 500 ms by default). One that does not (an agent
// older than heartbeats) is down when nothing authenticated arrived from it
// for livenessTimeout, three keepalive intervals. The edge checks every
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

	mu    sync.Mutex
	peers map[wireguard.PublicKey]*router.Peer // the current directory
	ids   map[*router.Peer]uuid.UUID           // connector or device id of each peer
	hosts map[*router.Peer]string              // hostname of each connector replica
	live  map[*router.Peer]*liveness           // health and wishes of each peer
	// override is the replica an operator made active by hand, per tunnel.
	override map[router.TunnelID]*router.Peer
	// byTunnel groups connector peers by tunnel for each election, and
	// cands describes one tunnel's replicas to it (scratch).
	byTunnel map[router.TunnelID][]*router.Peer
	cands    []candidate
	vnets    map[uuid.UUID]uint32 // stable router index per vnet
	rev      int64                // revision of the applied snapshot
	last     registry.Snapshot    // the applied snapshot, reapplied when MASQUE sessions come and go
	// masque holds the router peers of live MASQUE sessions by connector or
	// device id: twins of the WireGuard peers, added after them to the table.
	masque map[uuid.UUID][]*router.Peer

	// self4 and self6 are the edge's own addresses, where heartbeats go.
	self4, self6 netip.Addr
	// heartbeats counts the probes answered; sentMissed the packets forwarded
	// to a replica that missed its heartbeats but is its tunnel's only one.
	heartbeats, sentMissed atomic.Uint64

	scratch sync.Pool // *batch: per-Receive scratch, since Receive runs on several goroutines at once
	wg      sync.WaitGroup
}

// batch is the scratch space of one Receive call.
type batch struct {
	bufs  [][]byte
	icmp  [][]byte // ICMP error buffers with headroom for the transport header
	group [][]byte
}

func newDataplane(log *slog.Logger, reg *registry.Registry, r *router.Router) *dataplane {
	d := &dataplane{log: log, reg: reg, router: r, peers: map[wireguard.PublicKey]*router.Peer{}, ids: map[*router.Peer]uuid.UUID{},
		hosts: map[*router.Peer]string{}, live: map[*router.Peer]*liveness{}, override: map[router.TunnelID]*router.Peer{}, byTunnel: map[router.TunnelID][]*router.Peer{}, vnets: map[uuid.UUID]uint32{}}
	d.scratch.New = func() any { return &batch{} }
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
	var cur *wireguard.Session
	b.group = b.group[:0]
	flush := func() {
		if cur != nil && len(b.group) > 0 {
			d.ep.Send(cur, b.group, wireguard.Headroom) // drops are counted by the endpoint
		}
		b.group = b.group[:0]
	}
	for i, p := range pkts {
		from, _ := p.Session.Value().(*router.Peer)
		if from == nil {
			continue
		}
		var to *wireguard.Session
		var buf []byte
		if probe, ok := d.heartbeatProbe(p.Data()); ok {
			to = p.Session
			buf = heartbeat.AppendReply(b.icmp[i][:wireguard.Headroom], p.Data(), d.probe(from, probe))
		} else {
			icmp := b.icmp[i][wireguard.Headroom : wireguard.Headroom+router.IcmpBufSize]
			dec := d.router.Route(from, p.Data(), icmp)
			switch dec.Verdict {
			case router.Forward:
				if dec.To.Missed() {
					d.sentMissed.Add(1)
				}
				if _, ok := dec.To.Out.(*masque.Session); ok {
					d.sendTo(dec.To, p.Buf[:wireguard.Headroom+dec.Len], wireguard.Headroom, from)
					continue
				}
				to, _ = dec.To.Out.(*wireguard.Session)
				buf = p.Buf[:wireguard.Headroom+dec.Len]
			case router.Reply:
				to = p.Session
				buf = b.icmp[i][:wireguard.Headroom+len(dec.Reply)]
			default: // Local: nothing but the heartbeat responder listens on the edge's own address
				continue
			}
		}
		if to != cur {
			flush()
			cur = to
		}
		b.group = append(b.group, buf)
	}
	flush()
	clear(b.group[:cap(b.group)])
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
		if len(pkt) < 20 || netip.AddrFrom4([4]byte(pkt[16:20])) != d.self4 {
			return heartbeat.Message{}, false
		}
	case 6:
		if len(pkt) < 40 || netip.AddrFrom16([16]byte(pkt[24:40])) != d.self6 {
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

// apply rebuilds the peer directory and the routing table from a snapshot.
func (d *dataplane) apply(s registry.Snapshot) {
	defer d.noteApplied(s, time.Now())
	d.mu.Lock()
	gone := d.applyLocked(s)
	d.mu.Unlock()
	for _, ms := range gone {
		ms.Close()
	}
}

// applyLocked is apply with d.mu held; it returns the MASQUE sessions of
// agents that left the directory, for the caller to close after unlocking.
func (d *dataplane) applyLocked(s registry.Snapshot) (gone []*masque.Session) {
	d.last = s
	for _, v := range s.VNets {
		if _, ok := d.vnets[v.ID]; !ok {
			d.vnets[v.ID] = uint32(len(d.vnets))
		}
	}
	tunnelVNet := map[uuid.UUID]uuid.UUID{}
	var defaultVNet uuid.UUID
	for _, v := range s.VNets {
		if v.IsDefault {
			defaultVNet = v.ID
		}
	}
	b := router.NewTableBuilder()
	for _, rt := range s.Routes {
		tunnelVNet[rt.TunnelID] = rt.VNetID
		b.AddRoute(d.vnets[rt.VNetID], rt.Network, router.TunnelID(rt.TunnelID))
	}
	names := map[uuid.UUID]string{}
	for _, t := range s.Tunnels {
		names[t.ID] = t.Name
	}

	want := make(map[wireguard.PublicKey]bool, len(s.Connectors))
	var configs []wireguard.PeerConfig
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
		p := d.peers[key]
		if p == nil {
			p = &router.Peer{Name: names[c.TunnelID], Kind: router.Connector, Tunnel: router.TunnelID(c.TunnelID)}
			d.peers[key] = p
		}
		p.SetVNet(d.vnets[vnet])
		d.ids[p] = c.ID
		d.hosts[p] = c.Hostname
		want[key] = true
		configs = append(configs, wireguard.PeerConfig{PublicKey: key, Value: p})
		b.AddReplica(p)
		for _, mp := range d.masque[c.ID] {
			mp.SetVNet(d.vnets[vnet])
			b.AddReplica(mp)
		}
	}
	for _, dev := range s.Devices {
		key, err := wireguard.ParsePublicKey(dev.Key)
		if err != nil {
			d.log.Warn("skipping device with a bad key", "device", dev.ID, "err", err)
			continue
		}
		p := d.peers[key]
		if p == nil || p.Kind != router.Client || p.Overlay != dev.IP || p.User != dev.User {
			p = &router.Peer{Name: dev.Name, Kind: router.Client, Overlay: dev.IP, User: dev.User, Device: dev.ID}
			d.peers[key] = p
		}
		p.SetVNet(d.vnets[dev.VNetID])
		d.ids[p] = dev.ID
		want[key] = true
		configs = append(configs, wireguard.PeerConfig{PublicKey: key, Value: p})
		b.AddClient(p)
		for _, mp := range d.masque[dev.ID] {
			mp.SetVNet(d.vnets[dev.VNetID])
			b.AddClient(mp)
		}
	}
	for key, p := range d.peers {
		if !want[key] {
			delete(d.ids, p)
			delete(d.hosts, p)
			delete(d.live, p)
			if d.override[p.Tunnel] == p {
				delete(d.override, p.Tunnel)
			}
			delete(d.peers, key)
		}
	}
	gone = d.goneMASQUE()
	if err := d.ep.SetPeers(configs); err != nil {
		d.log.Warn("updating the WireGuard directory", "err", err)
	}
	for key, p := range d.peers {
		if p.Out == nil {
			if s := d.ep.Peer(key); s != nil {
				p.Out = s
			}
		}
	}
	d.router.SetTable(b.Build())
	d.applyPolicies(s)
	d.rev = s.Rev
	d.log.Debug("data plane updated", "rev", s.Rev, "peers", len(d.peers), "routes", len(s.Routes))
	return gone
}

// watchLiveness keeps each peer's up flag and each tunnel's active replica
// current, every livenessTick.
func (d *dataplane) watchLiveness(ctx context.Context) {
	t := time.NewTicker(livenessTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.mu.Lock()
			d.checkLocked(now)
			d.mu.Unlock()
		}
	}
}

// lastSeen reports when each device was last heard from, for the API.
func (d *dataplane) lastSeen() map[uuid.UUID]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[uuid.UUID]time.Time{}
	for _, p := range d.peers {
		if s, _ := p.Out.(*wireguard.Session); s != nil && p.Kind == router.Client {
			if t := s.LastReceived(); !t.IsZero() {
				out[d.ids[p]] = t.UTC()
			}
		}
	}
	d.masqueLastSeen(out)
	return out
}

// connections lists the live replicas of each tunnel, the active one first,
// then by how long they have been up, for the API.
func (d *dataplane) connections() map[uuid.UUID][]model.Connection {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[uuid.UUID][]model.Connection{}
	for _, p := range d.peers {
		if p.Kind != router.Connector || !p.Up() {
			continue
		}
		id := uuid.UUID(p.Tunnel)
		out[id] = append(out[id], d.connection(p))
	}
	d.masqueConnections(out)
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
	r := router.New(router.Config{ICMPSource4: self4, ICMPSource6: self6, Overlay: cfg.OverlayRange,
		MaxFlows: cmp.Or(cfg.MaxFlows, DefaultMaxFlows), OnFlow: flows.enqueue, Clock: clock.Now})
	d := newDataplane(log.With("component", "dataplane"), reg, r)
	d.flows, d.clock = flows, clock
	d.self4, d.self6 = self4, self6
	ep, err := wireguard.New(wireguard.Config{
		PrivateKey: wireguard.PrivateKey(id.wgPrivate),
		ListenPort: port,
		Bind:       bind,
		Receiver:   d,
		Logger:     log, // the endpoint adds component=wireguard
	})
	if err != nil {
		return nil, fmt.Errorf("start WireGuard on %s: %w", cfg.WGListen, err)
	}
	d.ep = ep
	return d, nil
}

// wgBind parses --wg-listen HOST:PORT: an empty or unspecified host
// (0.0.0.0, ::) listens on every address with wireguard-go's bind (nil),
// offloads and all; an IP address listens on that address alone.
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
	// Heartbeats counts the heartbeat probes the edge answered (the router
	// does not see them).
	Heartbeats uint64 `json:"heartbeats"`
	// SentMissed counts packets forwarded to a replica that missed its
	// heartbeats, because its tunnel had no other replica up.
	SentMissed uint64 `json:"sent_to_missed_replica"`
}

// stats returns the data plane's counters.
func (d *dataplane) stats() any {
	st := Stats{Router: d.router.Stats(), WireGuard: d.ep.Stats(), Heartbeats: d.heartbeats.Load(), SentMissed: d.sentMissed.Load()}
	d.mu.Lock()
	defer d.mu.Unlock()
	st.Peers = len(d.peers)
	for _, ps := range d.masque {
		st.MASQUE += len(ps)
	}
	for _, p := range d.peers {
		if p.Up() {
			st.PeersUp++
		}
	}
	return st
}
