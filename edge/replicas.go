package edge

import (
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/transport/heartbeat"
)

// probe records a heartbeat on session s and answers it, without taking
// the directory's lock: heartbeats arrive 10 times a second from every agent.
// A heartbeat that changes what the replica wants (leaving, preferred,
// priority), or brings it up, re-elects its tunnel's active replica at once
// (a client's: marks it up) rather than at the next tick; that alone locks.
func (d *dataplane) probe(s *session, m heartbeat.Message) heartbeat.Message {
	now := time.Now()
	reply := heartbeat.Message{Type: heartbeat.Reply, Seq: m.Seq, Interval: m.Interval, Multiplier: m.Multiplier}
	if s.gone.Load() {
		return reply // removed from the directory while its packet was on the way
	}
	s.lastProbe.Store(now.UnixNano())
	first := s.detect.Swap(int64(m.Detect())) == 0
	w := wishesOf(m)
	changed := s.wishes.Swap(w) != w
	if changed {
		s.peer.SetStandby(w&wishStandby != 0)
	}
	if changed || first || !s.heard.Load() {
		d.mu.Lock()
		if !s.gone.Load() {
			d.checkOneLocked(s, now)
		}
		d.mu.Unlock()
	}
	if s.peer.Active() {
		reply.Flags |= heartbeat.Active
	}
	if d.draining.Load() {
		reply.Flags |= heartbeat.Draining
	}
	return reply
}

// checkLocked is the liveness sweep: it refreshes the up flag of every
// client session that the wheel and heartbeats do not keep current (one that
// never sent a heartbeat and is not heard from: only its packets can bring it
// up) and elects each tunnel's active replica; d.mu must be held. Each flag is
// stored once, with its final value, so that the router, which reads them
// without the lock, never sees a replica go down and up again within one check.
func (d *dataplane) checkLocked(now time.Time) {
	for _, ss := range d.agents {
		for _, s := range ss {
			if s.peer.Kind == router.Client && s.detect.Load() == 0 && !s.heard.Load() {
				d.checkOneLocked(s, now)
			}
		}
	}
	for t, replicas := range d.tunnels {
		d.electLocked(t, replicas, now)
	}
}

// checkOneLocked is checkLocked for the one tunnel (or client) of s.
func (d *dataplane) checkOneLocked(s *session, now time.Time) {
	if s.peer.Kind == router.Client {
		d.hearLocked(s, now)
		d.setUpLocked(s, s.heard.Load(), now)
		return
	}
	d.electLocked(s.peer.Tunnel, d.tunnels[s.peer.Tunnel], now)
}

// hearLocked records whether s was heard from at now; d.mu must be held.
// A replica not heard from is no longer leaving: it is gone or stalled.
func (d *dataplane) hearLocked(s *session, now time.Time) {
	heard := s.alive(now)
	s.heard.Store(heard)
	if !heard {
		s.forgetLeaving()
		return
	}
	d.wheel.add(s, s.stopsBeingHeard(now))
}

// setUpLocked records whether s is up; d.mu must be held.
func (d *dataplane) setUpLocked(s *session, up bool, now time.Time) {
	switch {
	case up && s.upSince.IsZero():
		s.upSince = now
	case !up:
		s.upSince = time.Time{}
	}
	s.peer.SetUp(up)
	d.publishLocked(s)
}

// candidate is one replica of a tunnel as the election sees it.
type candidate struct {
	heard     bool // heard from within its detect time
	elsewhere bool // the registry lists its agent's session on another edge as active
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
// with "host unreachable" would break them for nothing. No replica is held
// whose agent's session another edge lists as active in the registry (the
// agent moved to that edge: its heartbeats there are the truth); its traffic
// then crosses the trunk to that edge.
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
		if c.active && !c.heard && c.reachable && !c.elsewhere {
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

// candidateLocked describes s for the election; d.mu must be held.
func (d *dataplane) candidateLocked(s, manual *session) candidate {
	return candidate{heard: s.heard.Load(), elsewhere: d.elsewhere[s.id], reachable: s.link.usable(), active: s.peer.Active(), manual: s == manual,
		leaving: s.leaving() || s.standby(), preferred: s.preferred(), priority: s.priority(), upSince: s.upSince}
}

// electLocked refreshes whether each replica of tunnel t was heard from,
// makes exactly one active (or none if none is up) and sets each one's up
// flag; d.mu must be held.
func (d *dataplane) electLocked(t router.TunnelID, replicas []*session, now time.Time) {
	for _, s := range replicas {
		d.hearLocked(s, now)
	}
	manual := d.override[t]
	if manual != nil && (!manual.heard.Load() || manual.leaving()) {
		delete(d.override, t)
		manual = nil
	}
	cands := d.cands[:0]
	var cur *session
	for _, s := range replicas {
		if s.peer.Active() {
			cur = s
		}
		cands = append(cands, d.candidateLocked(s, manual))
	}
	d.cands = cands
	win, held := elect(cands)
	var best *session
	if win >= 0 {
		best = replicas[win]
	}
	for _, s := range replicas {
		hold := held && s == best
		if hold != s.held {
			if hold {
				d.log.Warn("the tunnel's only replica missed its heartbeats; still sending to it while its session lasts",
					"tunnel", s.peer.Name, "connector", s.id, "host", s.host)
			} else if s.heard.Load() {
				d.log.Info("the replica answers heartbeats again", "tunnel", s.peer.Name, "connector", s.id, "host", s.host)
			}
		}
		s.held = hold
		d.setUpLocked(s, s.heard.Load() || hold, now)
		s.peer.SetMissed(hold)
	}
	if best == cur {
		return
	}
	for _, s := range replicas {
		s.peer.SetActive(s == best)
		d.publishLocked(s)
	}
	if best == nil {
		d.log.Warn("tunnel has no replica up", "tunnel", uuid.UUID(t))
		return
	}
	d.log.Info("active replica changed", "tunnel", best.peer.Name, "connector", best.id, "host", best.host,
		"priority", best.priority(), "preferred", best.preferred(), "manual", best == manual)
}

// failover makes a replica of tunnel t active by hand: the one whose
// connector id or hostname is replica, or, if replica is empty, the best
// standby. The choice holds until that replica goes down or leaves.
func (d *dataplane) failover(t uuid.UUID, replica string) (model.Connection, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var pick, cur *session
	for _, s := range d.tunnels[router.TunnelID(t)] { // WireGuard and MASQUE sessions
		if !s.heard.Load() || s.leaving() {
			continue
		}
		if s.peer.Active() {
			cur = s
		}
		switch {
		case replica == "" && !s.peer.Active() && (pick == nil || better(d.candidateLocked(s, nil), d.candidateLocked(pick, nil))):
			pick = s
		case replica != "" && (s.id.String() == replica || s.host == replica):
			pick = s
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
	d.electLocked(router.TunnelID(t), d.tunnels[router.TunnelID(t)], time.Now())
	return d.connection(pick), nil
}

// connection describes a live replica for the API; d.mu must be held.
func (d *dataplane) connection(s *session) model.Connection {
	c := model.Connection{
		ID:        s.id,
		Hostname:  s.host,
		OpenedAt:  s.upSince.UTC(),
		Priority:  int(s.priority()),
		Preferred: s.preferred(),
		State:     model.ReplicaStandby,
		OriginIP:  s.link.remote().Addr().String(),
		Transport: s.link.transport(),
		// The held replica is the tunnel's active one.
		MissedHeartbeats: s.held,
	}
	if wl, ok := s.link.(wgLink); ok {
		if t := wl.s.LastHandshake(); !t.IsZero() {
			t = t.UTC()
			c.LastHandshake = &t
		}
	}
	c.PathMTU = s.pathMTU()
	if ns := s.lastProbe.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		c.LastHeartbeat = &t
	}
	switch {
	case s.peer.Active():
		c.State = model.ReplicaActive
	case s.leaving():
		c.State = model.ReplicaLeaving
	}
	return c
}
