package edge

import (
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/transport/heartbeat"
	"github.com/switchyard/switchyard/transport/masque"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// liveness is what the edge knows of one peer's health and wishes; the
// dataplane's mutex guards it.
type liveness struct {
	lastProbe time.Time     // when the last heartbeat probe arrived
	detect    time.Duration // the sender's interval × multiplier; 0 before its first probe
	priority  uint8
	preferred bool      // its host holds the site's gateway address (keepalived MASTER)
	leaving   bool      // it is stopping and asked to hand over
	upSince   time.Time // when it last came up; zero while down
	heard     bool      // at the last check: heard from within its detect time
	held      bool      // at the last check: not heard, yet kept as its tunnel's only path
}

// alive reports whether a peer was heard from recently at now: its session
// has a usable key and, if it sends heartbeats, the last one came within its
// detect time; else anything authenticated came within livenessTimeout
// (WireGuard keepalives, from an agent older than heartbeats).
func (l *liveness) alive(s *wireguard.Session, now time.Time) bool {
	if s == nil || !s.Established() {
		return false
	}
	if l.detect > 0 {
		return now.Sub(l.lastProbe) < l.detect
	}
	return now.Sub(s.LastReceived()) < livenessTimeout
}

// reachable reports whether p's session can still carry packets: a
// WireGuard session whose key is in date (RejectAfterTime), or a MASQUE
// session, which leaves the directory when QUIC closes it.
func reachable(p *router.Peer) bool {
	switch s := p.Out.(type) {
	case *wireguard.Session:
		return s.Established()
	case *masque.Session:
		return true
	}
	return false
}

// probe records a heartbeat from p and answers it. A probe that changes what
// the replica wants (leaving, preferred, priority), or brings it up, re-elects
// its tunnel's active replica at once rather than at the next tick.
func (d *dataplane) probe(p *router.Peer, m heartbeat.Message) heartbeat.Message {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	reply := heartbeat.Message{Type: heartbeat.Reply, Seq: m.Seq, Interval: m.Interval, Multiplier: m.Multiplier}
	if _, known := d.ids[p]; !known {
		return reply // removed from the directory while its packet was on the way
	}
	l := d.liveOf(p)
	changed := l.detect == 0 || l.leaving != (m.Flags&heartbeat.Leaving != 0) ||
		l.preferred != (m.Flags&heartbeat.Preferred != 0) || l.priority != m.Priority || !l.heard
	l.lastProbe, l.detect = now, m.Detect()
	l.leaving, l.preferred, l.priority = m.Flags&heartbeat.Leaving != 0, m.Flags&heartbeat.Preferred != 0, m.Priority
	if changed {
		d.checkLocked(now)
	}
	if p.Active() {
		reply.Flags |= heartbeat.Active
	}
	return reply
}

// liveOf returns p's liveness record, creating it; d.mu must be held.
func (d *dataplane) liveOf(p *router.Peer) *liveness {
	l := d.live[p]
	if l == nil {
		l = &liveness{}
		d.live[p] = l
	}
	return l
}

// checkLocked refreshes every peer's up flag and elects each tunnel's active
// replica; d.mu must be held. Each flag is stored once, with its final
// value, so that the router, which reads them without the lock, never sees
// a replica go down and up again within one check.
func (d *dataplane) checkLocked(now time.Time) {
	tunnels := d.byTunnel // reused every tick: no garbage from the liveness loop
	for t, rs := range tunnels {
		clear(rs)
		tunnels[t] = rs[:0]
	}
	for p := range d.ids { // WireGuard and MASQUE peers
		l := d.liveOf(p)
		l.heard = d.alive(p, l, now)
		if !l.heard {
			l.leaving = false
		}
		if p.Kind == router.Connector {
			tunnels[p.Tunnel] = append(tunnels[p.Tunnel], p)
			continue
		}
		d.setUpLocked(p, l, l.heard, now)
	}
	for t, replicas := range tunnels {
		if len(replicas) == 0 {
			delete(tunnels, t) // the tunnel or its replicas are gone
			continue
		}
		d.electLocked(t, replicas, now)
	}
}

// setUpLocked records whether p is up; d.mu must be held.
func (d *dataplane) setUpLocked(p *router.Peer, l *liveness, up bool, now time.Time) {
	switch {
	case up && l.upSince.IsZero():
		l.upSince = now
	case !up:
		l.upSince = time.Time{}
	}
	p.SetUp(up)
}

// candidate is one replica of a tunnel as the election sees it.
type candidate struct {
	heard     bool // heard from within its detect time
	reachable bool // its session can still carry packets
	active    bool // it is the tunnel's active replica now
	manual    bool // an operator made it active by hand
	leaving   bool
	preferred bool
	priority  uint8
	upSince   time.Time
}

// elect picks the replica of a tunnel that gets its traffic: the index of
// the winner in cs, or -1 for none. The order among replicas heard from and
// not leaving: the operator's manual choice, then a replica whose host holds
// the gateway address, then the highest priority, then the one already
// active (no flapping between equals), then the longest connected.
//
// Declaring a replica dead exists to move its traffic to a standby. When no
// replica is heard from, the one that was active keeps the traffic (held is
// true) for as long as its session can carry it: a replica that stalls for a
// moment (SIGSTOP, a loaded host) keeps its connections, where answering them
// with "host unreachable" would break them for nothing.
func elect(cs []candidate) (win int, held bool) {
	win = -1
	for i, c := range cs {
		if !c.heard || c.leaving {
			continue
		}
		if win < 0 || better(c, cs[win]) {
			win = i
		}
	}
	if win >= 0 {
		return win, false
	}
	for i, c := range cs {
		if c.active && !c.heard && c.reachable {
			return i, true
		}
	}
	return -1, false
}

// better reports whether replica a should be active rather than b.
func better(a, b candidate) bool {
	switch {
	case a.manual != b.manual:
		return a.manual
	case a.preferred != b.preferred:
		return a.preferred
	case a.priority != b.priority:
		return a.priority > b.priority
	case a.active != b.active:
		return a.active
	}
	return a.upSince.Before(b.upSince)
}

// candidateLocked describes p for the election; d.mu must be held.
func (d *dataplane) candidateLocked(p, manual *router.Peer) candidate {
	l := d.live[p]
	return candidate{heard: l.heard, reachable: reachable(p), active: p.Active(), manual: p == manual,
		leaving: l.leaving, preferred: l.preferred, priority: l.priority, upSince: l.upSince}
}

// electLocked makes exactly one replica of tunnel t active (or none if none
// is up) and sets each one's up flag; d.mu must be held.
func (d *dataplane) electLocked(t router.TunnelID, replicas []*router.Peer, now time.Time) {
	manual := d.override[t]
	if manual != nil && (!d.live[manual].heard || d.live[manual].leaving) {
		delete(d.override, t)
		manual = nil
	}
	cands := d.cands[:0]
	var cur *router.Peer
	for _, p := range replicas {
		if p.Active() {
			cur = p
		}
		cands = append(cands, d.candidateLocked(p, manual))
	}
	d.cands = cands
	win, held := elect(cands)
	var best *router.Peer
	if win >= 0 {
		best = replicas[win]
	}
	for _, p := range replicas {
		l := d.live[p]
		hold := held && p == best
		if hold != l.held {
			if hold {
				d.log.Warn("the tunnel's only replica missed its heartbeats; still sending to it while its session lasts",
					"tunnel", p.Name, "connector", d.ids[p], "host", d.hosts[p])
			} else if l.heard {
				d.log.Info("the replica answers heartbeats again", "tunnel", p.Name, "connector", d.ids[p], "host", d.hosts[p])
			}
		}
		l.held = hold
		d.setUpLocked(p, l, l.heard || hold, now)
		p.SetMissed(hold)
	}
	if best == cur {
		return
	}
	for _, p := range replicas {
		p.SetActive(p == best)
	}
	if best == nil {
		d.log.Warn("tunnel has no replica up", "tunnel", uuid.UUID(t))
		return
	}
	l := d.live[best]
	d.log.Info("active replica changed", "tunnel", best.Name, "connector", d.ids[best], "host", d.hosts[best],
		"priority", l.priority, "preferred", l.preferred, "manual", best == manual)
}

// failover makes a replica of tunnel t active by hand: the one whose
// connector id or hostname is replica, or, if replica is empty, the best
// standby. The choice holds until that replica goes down or leaves.
func (d *dataplane) failover(t uuid.UUID, replica string) (model.Connection, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var pick, cur *router.Peer
	for p := range d.ids { // WireGuard and MASQUE peers
		if p.Kind != router.Connector || p.Tunnel != router.TunnelID(t) || !d.liveOf(p).heard || d.live[p].leaving {
			continue
		}
		if p.Active() {
			cur = p
		}
		switch {
		case replica == "" && !p.Active() && (pick == nil || better(d.candidateLocked(p, nil), d.candidateLocked(pick, nil))):
			pick = p
		case replica != "" && (d.ids[p].String() == replica || d.hosts[p] == replica):
			pick = p
		}
	}
	switch {
	case pick == nil && replica == "" && cur != nil:
		return model.Connection{}, model.Errorf(model.KindConflict, "tunnel %s has no standby replica up to fail over to", t)
	case pick == nil && replica == "":
		return model.Connection{}, model.Errorf(model.KindConflict, "tunnel %s has no replica up", t)
	case pick == nil:
		return model.Connection{}, model.Errorf(model.KindNotFound, "tunnel %s has no replica %q up (give a connector id or hostname from tunnel list)", t, replica)
	}
	d.override[router.TunnelID(t)] = pick
	d.checkLocked(time.Now())
	return d.connection(pick), nil
}

// connection describes a live replica for the API; d.mu must be held.
func (d *dataplane) connection(p *router.Peer) model.Connection {
	l := d.live[p]
	c := model.Connection{
		ID:        d.ids[p],
		Hostname:  d.hosts[p],
		OpenedAt:  l.upSince.UTC(),
		Priority:  int(l.priority),
		Preferred: l.preferred,
		State:     model.ReplicaStandby,
		// The held replica is the tunnel's active one.
		MissedHeartbeats: l.held,
	}
	switch s := p.Out.(type) {
	case *wireguard.Session:
		c.OriginIP = s.RemoteAddr().Addr().String()
	case *masque.Session:
		c.OriginIP = s.RemoteAddr().Addr().String()
	}
	switch {
	case p.Active():
		c.State = model.ReplicaActive
	case l.leaving:
		c.State = model.ReplicaLeaving
	}
	return c
}
