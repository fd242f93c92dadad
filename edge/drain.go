package edge

import (
	"time"

	"github.com/google/uuid"
)

// Draining: a clean stop of an edge of a cluster first answers every
// heartbeat with heartbeat.Draining. An agent that also holds a session to
// another edge moves its traffic there at once (its WireGuard AllowedIPs
// swap) and says so in out-of-schedule heartbeats to both edges: this edge
// then lists its session as standby and the other edge as active, and the
// registry tells every edge. Only then does the edge withdraw its records
// and stop, so what is lost is what was on the way during the swap.
//
// A draining edge is not a leaving replica: Leaving asks the edges to make
// another replica of the tunnel active (its host is going away); Draining
// asks the same replica to carry on through another edge. So the edge keeps
// electing its replicas as before: a replica that moves away turns standby
// here as it would on any swap (another replica here may become this edge's
// active one for the moments left), and on the edge it moved to it competes
// as any replica that comes up there (its preference and priority count,
// and a replica already active there keeps the tunnel among equals).
// Sessions of agents on this edge alone (--edges 1, MASQUE) have nowhere to
// move: the edge does not wait for them.

// drainBound bounds how long a clean stop waits for agents to move.
const drainBound = 1500 * time.Millisecond

// drainPoll is how often a draining edge checks whether its agents moved.
const drainPoll = 5 * time.Millisecond

// drain makes every heartbeat reply say that the edge is stopping, then
// waits, at most bound, until no session here is still to move (see
// movingLocked). It returns how many were left when it stopped waiting.
func (d *dataplane) drain(bound time.Duration) (left int) {
	start := time.Now()
	d.draining.Store(true)
	d.mu.Lock()
	first := d.movingLocked()
	d.mu.Unlock()
	left = first
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for left > 0 && time.Since(start) < bound {
		<-t.C
		d.mu.Lock()
		left = d.movingLocked()
		d.mu.Unlock()
	}
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case first == 0:
		d.log.Info("draining: no agent here holds a session to another edge")
	case left == 0:
		d.log.Info("draining: every agent with another edge moved its traffic there", "sessions", first, "took", took)
	default:
		d.log.Warn("draining: not every agent moved its traffic to another edge in time", "sessions", first, "left", left, "waited", took)
	}
	return left
}

// movingLocked counts the sessions this edge holds, up, whose agent holds
// another session on another edge (the registry lists it), and that are
// not moved yet: still not standby here, or with no session elsewhere that
// carries traffic (not standby) in the registry yet. d.mu must be held.
func (d *dataplane) movingLocked() int {
	elsewhere := map[uuid.UUID]bool{} // agent → one of its sessions elsewhere carries traffic
	for _, v := range d.viewed {
		if v.Edge != d.edgeName {
			elsewhere[v.ID] = elsewhere[v.ID] || !v.Standby
		}
	}
	n := 0
	for id, ss := range d.agents {
		carries, ok := elsewhere[id]
		if !ok {
			continue // on this edge alone: nowhere to move
		}
		for _, s := range ss {
			if s.gone.Load() || !s.peer.Up() {
				continue
			}
			if !s.standby() || !carries {
				n++
			}
		}
	}
	return n
}
