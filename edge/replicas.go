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
}

// alive reports whether a peer counts as up at now: its session has a usable
// key and it was heard from recently, by its heartbeats if it sends them,
// else by anything authenticated within livenessTimeout (WireGuard keepalives).
func (l *liveness) alive(s *wireguard.Session, now time.Time) bool {
	if s == nil || !s.Established() {
		return false
	}
	if l.detect > 0 {
		return now.Sub(l.lastProbe) < l.detect
	}
	return now.Sub(s.LastReceived()) < livenessTimeout
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
		l.preferred != (m.Flags&heartbeat.Preferred != 0) || l.priority != m.Priority || !p.Up()
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
// replica; d.mu must be held.
func (d *dataplane) checkLocked(now time.Time) {
	tunnels := d.byTunnel // reused every tick: no garbage from the liveness loop
	for t, rs := range tunnels {
		clear(rs)
		tunnels[t] = rs[:0]
	}
	for p := range d.ids { // WireGuard and MASQUE peers
		l := d.liveOf(p)
		up := d.alive(p, l, now)
		switch {
		case up && !p.Up():
			l.upSince = now
		case !up:
			l.upSince, l.leaving = time.Time{}, false
		}
		p.SetUp(up)
		if p.Kind == router.Connector {
			tunnels[p.Tunnel] = append(tunnels[p.Tunnel], p)
		}
	}
	for t, replicas := range tunnels {
		if len(replicas) == 0 {
			delete(tunnels, t) // the tunnel or its replicas are gone
			continue
		}
		d.elect(t, replicas)
	}
}

// elect makes exactly one replica of tunnel t active (or none if none is
// up). The order: the operator's manual choice, then a replica whose host
// holds the gateway address, then the highest priority, then the one already
// active (no flapping between equals), then the longest connected.
func (d *dataplane) elect(t router.TunnelID, replicas []*router.Peer) {
	manual := d.override[t]
	if manual != nil && (!manual.Up() || d.live[manual].leaving) {
		delete(d.override, t)
		manual = nil
	}
	var best, cur *router.Peer
	for _, p := range replicas {
		if p.Active() {
			cur = p
		}
		if !p.Up() || d.live[p].leaving {
			continue
		}
		if best == nil || d.better(p, best, manual) {
			best = p
		}
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

// better reports whether replica a should be active rather than b.
func (d *dataplane) better(a, b, manual *router.Peer) bool {
	la, lb := d.live[a], d.live[b]
	switch {
	case (a == manual) != (b == manual):
		return a == manual
	case la.preferred != lb.preferred:
		return la.preferred
	case la.priority != lb.priority:
		return la.priority > lb.priority
	case a.Active() != b.Active():
		return a.Active()
	}
	return la.upSince.Before(lb.upSince)
}

// failover makes a replica of tunnel t active by hand: the one whose
// connector id or hostname is replica, or, if replica is empty, the best
// standby. The choice holds until that replica goes down or leaves.
func (d *dataplane) failover(t uuid.UUID, replica string) (model.Connection, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var pick, cur *router.Peer
	for p := range d.ids { // WireGuard and MASQUE peers
		if p.Kind != router.Connector || p.Tunnel != router.TunnelID(t) || !p.Up() || d.live[p].leaving {
			continue
		}
		if p.Active() {
			cur = p
		}
		switch {
		case replica == "" && !p.Active() && (pick == nil || d.better(p, pick, nil)):
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
