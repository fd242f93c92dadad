package edge

// Trunks: one data plane across the edges of a cluster.
//
// Peering. Every edge of a cluster adds every other healthy edge (its
// registration in etcd: model.Edge.PublicKey and .WireGuard) as a peer of
// its own WireGuard endpoint, with that address and a persistent keepalive,
// so both ends initiate (a full mesh; a simultaneous handshake from both
// sides settles on one session as WireGuard does). A trunk peer's session
// carries a *trunk as its Value, never a *session, which is how Receive
// tells trunk packets from agent packets. Trunks follow the registrations:
// an edge that comes up is added, one whose registration lapses is removed.
//
// Trust. Trunk peers are edges of this cluster, authenticated by their
// WireGuard keys, which come from the cluster's store, sealed with the
// cluster key; an agent's key is never a trunk key. Policy is evaluated once,
// at the ingress edge (the one the sender is attached to), together with the
// anti-spoofing check of the sending session. The far edge trusts both: it
// does not re-run policy or anti-spoofing on a trunk packet that says policy
// was applied, it only routes it, and only to a session it holds itself (no
// transit: a packet crosses at most one trunk). It records the flow as
// allowed so that the replies, which it judges first, match it.
//
// Flow logs. Each edge writes its own flow log (no flow record goes through
// etcd), and `switchyard flows tail` reads the log of the edge it asks. A
// flow that crosses a trunk is logged by both edges, each record naming the
// two edges (model.FlowRecord.Edges: the ingress edge, which applied policy,
// first): the ingress edge's record is the flow's, the far edge's is marked
// FarCopy, so that counting a cluster's flows over every edge's log counts
// each once. The names cost the packet path nothing: the ingress edge reads
// the far edge's name off the remote session's record (router.Peer.Edge)
// and the far edge hands the trunk's edge name to the router, which keeps
// it in the flow's metadata only when the flow starts.
//
// Packet format. A trunk packet is a 12-byte header, then the inner IP packet
// unchanged (true source address; the TTL was decremented once, at the
// ingress edge: the cluster is one hop):
//
//	byte 0      version (high 4 bits, 1) and flags (low 4 bits):
//	            0x1 policy was applied at the ingress edge
//	bytes 1-3   reserved, zero
//	bytes 4-11  the first 8 bytes of the virtual network's UUID (the one the
//	            packet was routed in at the ingress edge)
//
// Each edge maps the 8 bytes back to its own index of the virtual network. Two
// virtual networks whose UUIDs share their first 8 bytes (never seen with
// random UUIDs, but possible with chosen ones) are not trunked: applying a
// snapshot logs an error and their packets stay on their edge. No identity
// travels: the far edge derives the sending party from (vnet, source
// address) with its own tables, which every edge builds from the same
// configuration: a device by its overlay address, a site by the tunnel whose
// route covers the source in that vnet.
//
// Split brain: an edge cut off from etcd. etcd holds the configuration, the
// edge registrations and the session registry, each edge's under leases it
// renews (registration cluster.DefaultTTL, sessions cluster.SessionTTL). When
// one edge, E, loses etcd while the edges still reach each other and their
// agents, every edge keeps forwarding with what it knows:
//
//   - E keeps its last configuration (follow), its trunks (followTrunks keeps
//     them as they are while it cannot list the edges) and its last view of
//     the registry (the view is replaced only by a successful listing), so it
//     routes to the other edges' sessions as before.
//   - The other edges see E's records vanish when its session lease expires,
//     and its registration lapse. They keep its records as they last were
//     (cluster.SessionView.Lost: records that went with their lease, not
//     withdrawn one by one) and its trunk, for as long as E answers on that
//     trunk (trunk.alive: heard from within trunkAlive), so they route to
//     E's sessions as before. A lost record gives way to any live one that
//     lists the same agent's session as active elsewhere: an agent that moved
//     to another edge is reached there. A dead E falls silent on its trunk
//     and its records stop being used within trunkAlive (checked every
//     lostRecheck); a live record of the agent elsewhere wins at once.
//   - No replica is active twice in a way that loses packets: the agents'
//     heartbeats decide which of their sessions is active, on every edge.
//     What E cannot learn while cut off is that an agent it no longer hears
//     moved to another edge, so it holds that replica active (replicas.go,
//     elect) and sends it the packets of E's own senders, which the agent's
//     standby peer drops. E drops the hold as soon as it reads the registry
//     again and finds the replica active elsewhere; its traffic then crosses
//     the trunk.
//   - When E reaches etcd again it grants a new lease and writes every record
//     again (cluster.SessionPublisher), registers again, and follows the
//     configuration from a fresh snapshot; the others replace the kept
//     records by the written ones.
//
// An edge that has lost etcd cannot learn changes of configuration, of the
// cluster's edges or of where sessions moved: the cluster keeps forwarding
// on the state of the moment the partition began, for as long as it lasts.
//
// Headroom. The endpoint leaves trunkHeaderSize bytes in front of every
// received packet (wireguard.Config.ReceiveHeadroom), so a packet from an
// agent gets its trunk header in place and is encrypted onto the trunk
// without a copy; a packet from a trunk arrives with its header in front of
// Packet.Off (wireguard.PeerConfig.Framing) and leaves for the agent from
// there, also in place.

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/control/cluster"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// The trunk header.
const (
	trunkHeaderSize    = 12
	trunkVersion       = 1
	trunkPolicyApplied = 0x1
)

// trunkKeepalive is the trunks' persistent keepalive: both ends keep the
// session (and any NAT mapping) warm.
const trunkKeepalive = 5 * time.Second

// trunkRelist is how often the edges are listed again, whatever the watch says.
const trunkRelist = 10 * time.Second

// trunkAlive is how long after it last heard from a trunk an edge takes
// the edge at its far end to be alive: two keepalives and a margin.
const trunkAlive = 2*trunkKeepalive + time.Second

// alive reports whether the far edge was heard from over the trunk lately.
func (t *trunk) alive(now time.Time) bool {
	return t.s.Established() && now.Sub(t.s.LastReceived()) < trunkAlive
}

// trunk is the WireGuard session to another edge of the cluster.
type trunk struct {
	edge string
	key  wireguard.PublicKey
	addr string // the edge's WireGuard address as registered
	s    *wireguard.Session
	// Counters of inner IP packets: in from the edge, out to it; drops of
	// packets from it the edge could not take (bad header, unknown vnet).
	rxPackets, rxBytes, txPackets, txBytes, dropped atomic.Uint64
}

// vnetKey is a virtual network's trunk name: the first 8 bytes of its UUID.
type vnetKey uint64

func vnetKeyOf(id uuid.UUID) vnetKey { return vnetKey(binary.BigEndian.Uint64(id[:8])) }

// vnetKeys maps trunk names and vnet indexes both ways, immutably.
type vnetKeys struct {
	byIndex []vnetKey // by vnet index; 0: not trunked
	sorted  []vnetIndex
}

type vnetIndex struct {
	key   vnetKey
	index uint32
}

// index returns the vnet index of key.
func (v *vnetKeys) index(key vnetKey) (uint32, bool) {
	i, ok := slices.BinarySearchFunc(v.sorted, key, func(e vnetIndex, k vnetKey) int { return cmp.Compare(e.key, k) })
	if !ok {
		return 0, false
	}
	return v.sorted[i].index, true
}

// key returns the trunk name of vnet index i, or 0 if it is not trunked.
func (v *vnetKeys) key(i uint32) vnetKey {
	if int(i) < len(v.byIndex) {
		return v.byIndex[i]
	}
	return 0
}

// buildVNetKeysLocked names every vnet of the directory for trunks, refusing
// (with a logged error) those whose names collide; d.mu must be held.
func (d *dataplane) buildVNetKeysLocked() {
	v := &vnetKeys{byIndex: make([]vnetKey, len(d.vnets))}
	owners := map[vnetKey][]uuid.UUID{}
	for id := range d.vnets {
		owners[vnetKeyOf(id)] = append(owners[vnetKeyOf(id)], id)
	}
	for k, ids := range owners {
		if len(ids) > 1 || k == 0 {
			d.log.Error("virtual networks not trunked: their ids share their first 8 bytes, so their traffic stays on its edge", "vnets", ids)
			continue
		}
		i := d.vnets[ids[0]]
		v.byIndex[i] = k
		v.sorted = append(v.sorted, vnetIndex{k, i})
	}
	slices.SortFunc(v.sorted, func(a, b vnetIndex) int { return cmp.Compare(a.key, b.key) })
	d.vkeys.Store(v)
}

// putTrunkHeader writes the header of a packet routed in vnet key k.
func putTrunkHeader(h []byte, k vnetKey) {
	h[0] = trunkVersion<<4 | trunkPolicyApplied
	h[1], h[2], h[3] = 0, 0, 0
	binary.BigEndian.PutUint64(h[4:12], uint64(k))
}

// trunkLink is a session held by another edge, reached over the trunk to it.
type trunkLink struct {
	d *dataplane
	t *trunk
}

// send puts buf[off:], a packet from session from, on the trunk: in place
// with room for the header and the transport's headroom in front, else in
// a copy (MASQUE's buffers: the WireGuard path in Receive never copies).
// A packet from the edge itself (from nil) never crosses a trunk.
func (l trunkLink) send(buf []byte, off int, from *session) {
	if from == nil {
		return
	}
	if n := len(buf) - off; off < wireguard.Headroom+trunkHeaderSize || cap(buf)-len(buf) < wireguard.Tailroom {
		b := make([]byte, wireguard.Headroom+trunkHeaderSize+n, wireguard.Headroom+trunkHeaderSize+n+wireguard.Tailroom)
		copy(b[wireguard.Headroom+trunkHeaderSize:], buf[off:])
		buf, off = b, wireguard.Headroom+trunkHeaderSize
	}
	if l.t.frame(l.d.vkeys.Load(), buf, off, from) {
		l.d.ep.Send(l.t.s, [][]byte{buf}, off-trunkHeaderSize)
	}
}

// frame writes the trunk header in front of buf[off:], a packet from
// session from, and counts it; it reports false, counted as a drop, when
// the sender's vnet is not trunked or there is no room for the header and
// the transport's headroom in front.
func (t *trunk) frame(keys *vnetKeys, buf []byte, off int, from *session) bool {
	k := keys.key(from.peer.VNet())
	if k == 0 || off < wireguard.Headroom+trunkHeaderSize {
		t.dropped.Add(1)
		return false
	}
	putTrunkHeader(buf[off-trunkHeaderSize:off], k)
	t.txPackets.Add(1)
	t.txBytes.Add(uint64(len(buf) - off))
	return true
}

func (l trunkLink) remote() netip.AddrPort { return l.t.s.RemoteAddr() }
func (l trunkLink) usable() bool           { return l.t.s.Established() }
func (l trunkLink) lastReceived(time.Time) time.Time {
	return l.t.s.LastReceived()
}
func (trunkLink) transport() string { return "trunk" }

// toTrunk prepares p, from session from and routed to dst (a session of
// another edge), for the trunk: it writes the header in place in front of
// the packet and returns the trunk's session and the buffer to send at
// wireguard.Headroom, or nil if the packet cannot cross (its vnet is not
// trunked).
func (d *dataplane) toTrunk(p wireguard.Packet, n int, from, dst *session) (*wireguard.Session, []byte) {
	t := dst.link.(trunkLink).t
	if !t.frame(d.vkeys.Load(), p.Buf[:p.Off+n], p.Off, from) {
		return nil, nil
	}
	return t.s, p.Buf[p.Off-trunkHeaderSize-wireguard.Headroom : p.Off+n]
}

// fromTrunk routes p, which arrived over trunk t, to a session of this edge.
// It returns the WireGuard session to send to and the buffer to send at
// wireguard.Headroom, or nil when the packet was dropped or sent already
// (another transport).
func (d *dataplane) fromTrunk(t *trunk, p wireguard.Packet, b *batch) (*wireguard.Session, []byte) {
	h := p.Buf[p.Off-trunkHeaderSize : p.Off]
	vnet, ok := d.vkeys.Load().index(vnetKey(binary.BigEndian.Uint64(h[4:12])))
	if h[0]>>4 != trunkVersion || !ok {
		t.dropped.Add(1)
		return nil, nil
	}
	pkt := p.Data()
	t.rxPackets.Add(1)
	t.rxBytes.Add(uint64(len(pkt)))
	dec := d.router.RouteTrunk(vnet, pkt, t.edge, h[0]&trunkPolicyApplied != 0)
	if dec.Verdict == router.ForwardFragments {
		d.sendFragments(b, pkt[:dec.Len], dec, nil)
		return nil, nil
	}
	if dec.Verdict != router.Forward {
		return nil, nil
	}
	dst := dec.To.Out.(*session)
	if wl, ok := dst.link.(wgLink); ok {
		return wl.s, p.Buf[p.Off-wireguard.Headroom : p.Off+dec.Len]
	}
	dst.link.send(p.Buf[:p.Off+dec.Len], p.Off, nil)
	return nil, nil
}

// setTrunks makes the trunks those to the healthy edges of edges other than
// self: new ones are added as peers of the endpoint, gone ones removed. It
// reports whether the set changed.
func (d *dataplane) setTrunks(edges []model.Edge, self string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[string]bool{}
	changed := false
	for _, e := range edges {
		if cur := d.trunks[e.Name]; e.Name != self && !e.Healthy && cur != nil && cur.alive(time.Now()) {
			want[e.Name] = true // its registration lapsed, yet it answers: cut off from etcd, not dead
			continue
		}
		if e.Name == self || !e.Healthy || e.PublicKey == "" || e.WireGuard == "" {
			continue
		}
		key, err := wireguard.ParsePublicKey(e.PublicKey)
		if err != nil {
			d.log.Warn("edge not trunked: bad WireGuard key", "edge", e.Name, "err", err)
			continue
		}
		addr, err := resolveAddrPort(e.WireGuard)
		if err != nil {
			d.log.Warn("edge not trunked: bad WireGuard address", "edge", e.Name, "addr", e.WireGuard, "err", err)
			continue
		}
		want[e.Name] = true
		if cur := d.trunks[e.Name]; cur != nil && cur.key == key && cur.addr == e.WireGuard {
			continue
		}
		if cur := d.trunks[e.Name]; cur != nil && cur.key != key {
			d.ep.RemovePeer(cur.key)
		}
		t := &trunk{edge: e.Name, key: key, addr: e.WireGuard}
		s, err := d.ep.AddPeer(wireguard.PeerConfig{PublicKey: key, Endpoint: addr, PersistentKeepalive: trunkKeepalive,
			Framing: trunkHeaderSize, Value: t})
		if err != nil {
			d.log.Warn("edge not trunked", "edge", e.Name, "err", err)
			delete(want, e.Name)
			continue
		}
		t.s = s
		d.trunks[e.Name] = t
		d.ep.Handshake(s)
		d.log.Info("trunk to edge", "edge", e.Name, "addr", e.WireGuard)
		changed = true
	}
	for name, t := range d.trunks {
		if !want[name] {
			d.ep.RemovePeer(t.key)
			delete(d.trunks, name)
			d.log.Info("trunk removed", "edge", name)
			changed = true
		}
	}
	return changed
}

// resolveAddrPort parses an edge's registered WireGuard address, host:port,
// resolving a host name.
func resolveAddrPort(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ua, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", s, err)
	}
	return ua.AddrPort(), nil
}

// followTrunks keeps the trunks to the cluster's edges until ctx ends: it
// lists the edges at start, whenever an edge's liveness key changes (an
// edge registering or lapsing), and every trunkRelist.
func (d *dataplane) followTrunks(ctx context.Context, cli *clientv3.Client, prefix, self string) {
	watch := cli.Watch(clientv3.WithRequireLeader(ctx), prefix+"a/", clientv3.WithPrefix())
	tick := time.NewTicker(trunkRelist)
	defer tick.Stop()
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, cluster.SessionTTL)
		edges, err := cluster.ListEdges(lctx, cli, prefix)
		cancel()
		if err != nil {
			d.log.Warn("listing the cluster's edges for trunks; keeping the trunks as they are", "err", err)
		} else if d.setTrunks(edges, self) {
			d.rebuildRemote()
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		case _, ok := <-watch:
			if !ok && ctx.Err() == nil {
				watch = cli.Watch(clientv3.WithRequireLeader(ctx), prefix+"a/", clientv3.WithPrefix())
			}
		}
	}
}

// followRemote keeps the records of the sessions other edges hold, from
// the cluster's session view, until ctx ends.
// While the view holds records lost with an edge's lease, it is read again
// every lostRecheck, so that they stop being used once their edge's trunk
// falls silent.
func (d *dataplane) followRemote(ctx context.Context, view *cluster.SessionView) {
	tick := time.NewTicker(lostRecheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-view.Changed():
		case <-tick.C:
			d.mu.Lock()
			idle := len(d.lost) == 0
			d.mu.Unlock()
			if idle {
				continue
			}
		}
		d.readView(view.Sessions(), view.Lost())
	}
}

// readView takes in the cluster's session view: its live records and those
// lost with their edge's lease; it rebuilds the remote records and the table.
func (d *dataplane) readView(live, lost []model.Session) {
	d.mu.Lock()
	d.viewed, d.lost = live, lost
	d.elsewhere = map[uuid.UUID]bool{}
	for _, s := range d.viewed {
		if s.Edge != d.edgeName && s.Kind == model.SessionConnector && s.Active {
			d.elsewhere[s.ID] = true
		}
	}
	d.mu.Unlock()
	d.rebuildRemote()
}

// lostRecheck is how often records lost with an edge's lease are checked
// against their edge's trunk.
const lostRecheck = time.Second

// keptLostLocked returns the records lost with their edge's lease that are
// still used: their edge's trunk is alive and no other edge has a live
// record of the same agent that is active; d.mu must be held.
func (d *dataplane) keptLostLocked(now time.Time) []model.Session {
	if len(d.lost) == 0 {
		return nil
	}
	live := map[uuid.UUID]bool{}
	for _, s := range d.viewed {
		if s.Active {
			live[s.ID] = true
		}
	}
	var out []model.Session
	for _, s := range d.lost {
		if t := d.trunks[s.Edge]; t != nil && t.alive(now) && !live[s.ID] {
			out = append(out, s)
		}
	}
	return out
}

// rebuildRemote builds a record for every session another edge holds
// (over the trunk to that edge; none without one), and the routing table.
func (d *dataplane) rebuildRemote() {
	d.mu.Lock()
	devices := map[uuid.UUID]*model.Device{}
	for i := range d.last.Devices {
		devices[d.last.Devices[i].ID] = &d.last.Devices[i]
	}
	tunnels := map[uuid.UUID]string{}
	for _, t := range d.last.Tunnels {
		tunnels[t.ID] = t.Name
	}
	var out []*session
	kept := d.keptLostLocked(time.Now())
	for _, s := range slices.Concat(d.viewed, kept) {
		t := d.trunks[s.Edge]
		if s.Edge == d.edgeName || t == nil {
			continue
		}
		vnet, ok := d.vnets[s.VNet]
		if !ok {
			continue
		}
		p := &router.Peer{Remote: true, Edge: s.Edge}
		switch s.Kind {
		case model.SessionConnector:
			p.Kind, p.Tunnel, p.Name = router.Connector, router.TunnelID(s.Tunnel), tunnels[s.Tunnel]
		case model.SessionDevice:
			dev := devices[s.ID]
			if dev == nil {
				continue
			}
			p.Kind, p.Device, p.Overlay, p.User, p.Name = router.Client, s.ID, dev.IP, dev.User, dev.Name
			p.SetIdentity(deviceIdentity(dev)) // the ingress edge decides on the device's identity
		default:
			continue
		}
		p.SetVNet(vnet)
		_, _, mtu := sessionMTUs(d.mtu)
		p.SetMTU(mtu) // the trunk's; the edge holding the session checks its own
		p.SetUp(true)
		p.SetActive(s.Active)
		p.SetStandby(s.Standby) // the router's last resort, while its agent moves (dest.pick)
		r := newSession(p, s.ID, trunkLink{d: d, t: t})
		r.remote, r.vnet = s.Edge, s.VNet
		out = append(out, r)
	}
	d.remote = out
	d.mu.Unlock()
	d.rebuildTable()
}

// TrunkStats are one trunk's counters, of inner IP packets and bytes.
type TrunkStats struct {
	Edge       string `json:"edge"`
	Up         bool   `json:"up"`
	PacketsIn  uint64 `json:"packets_in"`
	BytesIn    uint64 `json:"bytes_in"`
	PacketsOut uint64 `json:"packets_out"`
	BytesOut   uint64 `json:"bytes_out"`
	Dropped    uint64 `json:"dropped"`
}

// trunkStatsLocked lists the trunks' counters by edge; d.mu must be held.
func (d *dataplane) trunkStatsLocked() []TrunkStats {
	var out []TrunkStats
	for _, t := range d.trunks {
		out = append(out, TrunkStats{Edge: t.edge, Up: t.s.Established(), PacketsIn: t.rxPackets.Load(), BytesIn: t.rxBytes.Load(),
			PacketsOut: t.txPackets.Load(), BytesOut: t.txBytes.Load(), Dropped: t.dropped.Load()})
	}
	slices.SortFunc(out, func(a, b TrunkStats) int { return cmp.Compare(a.Edge, b.Edge) })
	return out
}
