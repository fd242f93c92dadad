package edge

import (
	"context"
	"time"

	"github.com/switchyard/switchyard/router"
)

// Liveness at scale: a session that is heard from sits in a timer wheel at
// the moment it would stop being heard (its last heartbeat plus its detect
// time, or its last packet plus livenessTimeout; a device without heartbeats
// a sweep later, while its WireGuard key lasts). Every livenessTick the edge
// looks only at the sessions whose moment came: those heard from since go
// back in at their new moment, the others go down at once (and their tunnel
// elects another replica). Heartbeats never touch the wheel. Everything
// else (sessions coming up without heartbeats, a held replica's session
// expiring) is caught by a full pass every livenessSweep, so idle sessions
// cost next to nothing between passes.
const livenessSweep = time.Second

// wheelSlots × livenessTick is the wheel's horizon; a later moment waits in
// the last slot and is placed again when it comes up.
const wheelSlots = 256

// wheel is a hashed timer wheel of sessions; the dataplane's mutex guards it.
type wheel struct {
	slots [wheelSlots][]*session
	pos   int   // the slot of the current tick
	at    int64 // when the current tick began, Unix ns
}

// add places s at its moment deadline (Unix ns), unless it is in already.
func (w *wheel) add(s *session, deadline int64) {
	if s.wheeled {
		return
	}
	// The first tick at or after deadline, but never the current slot: it
	// is being emptied.
	n := 1
	if ahead := deadline - w.at; ahead > 0 {
		n = int(min((ahead+int64(livenessTick)-1)/int64(livenessTick), wheelSlots-1))
	}
	i := (w.pos + n) % wheelSlots
	w.slots[i] = append(w.slots[i], s)
	s.wheeled = true
}

// advance moves the wheel to now, a tick at a time (after a stall too: the
// moments in between come due in order), and calls due for each session
// whose slot passed; due may add it again.
func (w *wheel) advance(now int64, due func(*session)) {
	for w.at+int64(livenessTick) <= now {
		w.at += int64(livenessTick)
		w.pos = (w.pos + 1) % wheelSlots
		slot := w.slots[w.pos]
		w.slots[w.pos] = slot[:0]
		for i, s := range slot {
			s.wheeled = false
			slot[i] = nil
			due(s)
		}
	}
}

// watchLiveness keeps each session's up flag and each tunnel's active
// replica current: the wheel every livenessTick, a full pass every
// livenessSweep.
func (d *dataplane) watchLiveness(ctx context.Context) {
	t := time.NewTicker(livenessTick)
	defer t.Stop()
	var lastSweep time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.mu.Lock()
			d.wheel.advance(now.UnixNano(), func(s *session) { d.dueLocked(s, now) })
			if now.Sub(lastSweep) >= livenessSweep {
				d.checkLocked(now)
				lastSweep = now
			}
			d.mu.Unlock()
		}
	}
}

// dueLocked checks a session whose moment came; d.mu must be held.
func (d *dataplane) dueLocked(s *session, now time.Time) {
	if s.gone.Load() {
		return
	}
	if s.alive(now) {
		d.wheel.add(s, s.stopsBeingHeard(now))
		return
	}
	d.checkOneLocked(s, now) // down: re-elect its tunnel, or mark the client down
}

// stopsBeingHeard is when s stops counting as heard from if nothing more
// arrives, Unix ns.
func (s *session) stopsBeingHeard(now time.Time) int64 {
	if detect := s.detect.Load(); detect > 0 {
		return s.lastProbe.Load() + detect
	}
	if s.peer.Kind == router.Client {
		// A device without heartbeats lives until its WireGuard key
		// expires: look again at the next sweep.
		return now.Add(livenessSweep).UnixNano()
	}
	return s.link.lastReceived(now).Add(livenessTimeout).UnixNano()
}
