package edge

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/transport/heartbeat"
)

// openLink is a link that is always usable and carries nothing.
type openLink struct{}

func (openLink) send([]byte, int, *session)           {}
func (openLink) remote() netip.AddrPort               { return netip.MustParseAddrPort("192.0.2.1:51820") }
func (openLink) usable() bool                         { return true }
func (openLink) lastReceived(now time.Time) time.Time { return now }
func (openLink) transport() string                    { return "wireguard" }

// drainLab is a directory of edge-1 holding client sessions, up, and the
// registry's view of the cluster.
type drainLab struct{ d *dataplane }

func newDrainLab() drainLab {
	d := newDataplane(slog.New(slog.DiscardHandler), nil, nil)
	d.edgeName = "edge-1"
	return drainLab{d}
}

// session adds an up session of a new agent, standby here or not.
func (l drainLab) session(standby bool) *session {
	id := uuid.New()
	s := newSession(&router.Peer{Kind: router.Client}, id, openLink{})
	if standby {
		s.wishes.Store(wishStandby)
	}
	s.peer.SetUp(true)
	l.d.mu.Lock()
	l.d.agents[id] = append(l.d.agents[id], s)
	l.d.mu.Unlock()
	return s
}

// elsewhere lists a session of s's agent on edge-2 in the registry's view.
func (l drainLab) elsewhere(s *session, standby bool) {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	l.d.viewed = append(l.d.viewed, model.Session{Edge: "edge-2", Kind: model.SessionDevice, ID: s.id, Standby: standby, Active: !standby})
}

// timedDrain runs drain with bound and returns what it returned and how long it took.
func (l drainLab) timedDrain(bound time.Duration) (int, time.Duration) {
	start := time.Now()
	left := l.d.drain(bound)
	return left, time.Since(start)
}

// TestDrainWaitsOnlyForAgentsWithAnotherEdge: a draining edge does not wait
// for the sessions of agents on it alone, returns as soon as every agent
// with a session elsewhere has moved (standby here, carrying traffic
// there), and gives up at the bound on one that does not move.
func TestDrainWaitsOnlyForAgentsWithAnotherEdge(t *testing.T) {
	const bound = time.Second

	t.Run("single-edge agents", func(t *testing.T) {
		l := newDrainLab()
		l.session(false)
		l.session(false)
		if left, took := l.timedDrain(bound); left != 0 || took > bound/4 {
			t.Errorf("drain with agents on this edge alone = %d left after %v, want 0 at once", left, took)
		}
		if !l.d.draining.Load() {
			t.Error("the edge does not say it drains")
		}
	})

	t.Run("moved already", func(t *testing.T) {
		l := newDrainLab()
		l.elsewhere(l.session(true), false) // standby here, active on edge-2
		if left, took := l.timedDrain(bound); left != 0 || took > bound/4 {
			t.Errorf("drain with every agent moved = %d left after %v, want 0 at once", left, took)
		}
	})

	t.Run("moves during the drain", func(t *testing.T) {
		l := newDrainLab()
		l.session(false) // alone here: not waited for
		a := l.session(false)
		l.elsewhere(a, true) // active here, standby on edge-2
		b := l.session(false)
		l.elsewhere(b, true)
		const after = 100 * time.Millisecond
		go func() {
			time.Sleep(after)
			a.wishes.Store(wishStandby) // the agents' heartbeats say they moved
			b.wishes.Store(wishStandby)
			l.d.mu.Lock()
			l.d.viewed = nil // and the registry, a moment later
			l.d.mu.Unlock()
			l.elsewhere(a, false)
			time.Sleep(after / 2)
			l.elsewhere(b, false)
		}()
		left, took := l.timedDrain(bound)
		if left != 0 || took < after || took > after*3/2+bound/4 {
			t.Errorf("drain = %d left after %v, want 0 once both moved (%v, %v)", left, took, after, after*3/2)
		}
	})

	t.Run("does not move", func(t *testing.T) {
		l := newDrainLab()
		l.elsewhere(l.session(false), true) // an agent that ignores Draining
		stuck := l.session(true)
		l.elsewhere(stuck, true) // standby here, yet nothing carries its traffic elsewhere
		left, took := l.timedDrain(bound / 4)
		if left != 2 || took < bound/4 || took > bound {
			t.Errorf("drain = %d left after %v, want 2 at the bound %v", left, took, bound/4)
		}
	})

	t.Run("down or gone sessions", func(t *testing.T) {
		l := newDrainLab()
		down := l.session(false)
		down.peer.SetUp(false)
		l.elsewhere(down, false)
		gone := l.session(false)
		gone.gone.Store(true)
		l.elsewhere(gone, false)
		if left, took := l.timedDrain(bound); left != 0 || took > bound/4 {
			t.Errorf("drain with sessions down or gone = %d left after %v, want 0 at once", left, took)
		}
	})
}

// TestDrainingReplies: once the edge drains, every heartbeat reply says so,
// and says as before whether the replica is active; not before.
func TestDrainingReplies(t *testing.T) {
	l := newDrainLab()
	s := l.session(false)
	probe := heartbeat.Message{Type: heartbeat.Probe, Interval: 100 * time.Millisecond, Multiplier: 5, Seq: 1}
	if r := l.d.probe(s, probe); r.Flags&heartbeat.Draining != 0 {
		t.Fatalf("a reply before the drain says Draining: %+v", r)
	}
	l.d.drain(0)
	for _, standby := range []bool{false, true} {
		m := probe
		if standby {
			m.Flags = heartbeat.Standby
		}
		if r := l.d.probe(s, m); r.Flags&heartbeat.Draining == 0 || r.Seq != 1 {
			t.Errorf("a reply (standby %v) while draining = %+v, want Draining", standby, r)
		}
	}
}
