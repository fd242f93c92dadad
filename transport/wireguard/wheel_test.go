package wireguard

import (
	"math/rand/v2"
	"sync"
	"testing"
)

func TestWheel(t *testing.T) {
	const (
		tick = 10
		turn = wheelSlots * tick
		keep = -1 << 62 // leave the session where it is
		drop = -1 << 61 // remove it
	)
	type op struct {
		schedule int64 // deadline, keep or drop
		advance  int64 // then advance the wheel to this time
		fired    bool  // whether the session fires then
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"on a tick boundary fires at that tick", []op{{50, 49, false}, {keep, 50, true}}},
		{"between ticks fires at the next one", []op{{51, 59, false}, {keep, 60, true}}},
		{"a past deadline fires at the next tick", []op{{-100, 9, false}, {keep, 10, true}}},
		{"a later turn waits", []op{{turn + 30, 30, false}, {keep, turn + 29, false}, {keep, turn + 30, true}}},
		{"a stall of many turns fires once", []op{{70, 5 * turn, true}, {keep, 6 * turn, false}}},
		{"moved later", []op{{30, 0, false}, {80, 79, false}, {keep, 80, true}}},
		{"moved earlier", []op{{300, 0, false}, {20, 20, true}, {keep, 400, false}}},
		{"removed", []op{{30, 0, false}, {drop, 1000, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWheel(tick, 0)
			s := new(Session)
			for i, o := range tc.ops {
				switch o.schedule {
				case keep:
				case drop:
					w.remove(s)
				default:
					w.schedule(s, o.schedule)
				}
				fired := false
				w.advance(o.advance, func(got *Session) {
					if got != s {
						t.Fatalf("fired %p, want %p", got, s)
					}
					fired = true
				})
				if fired != o.fired {
					t.Fatalf("op %d %+v: fired %v", i, o, fired)
				}
			}
			if w.n != 0 || s.wl.at != 0 {
				t.Fatalf("wheel holds %d sessions at the end (session at tick %d), want none", w.n, s.wl.at)
			}
		})
	}
}

// TestWheelAgainstReference drives the wheel with random schedules, removals,
// advances (some of more than a turn) and re-schedules from fire, and checks
// every advance against a plain map of due ticks.
func TestWheelAgainstReference(t *testing.T) {
	const tick = 10
	rng := rand.New(rand.NewPCG(13, 5))
	w := newWheel(tick, 0)
	ss := make([]*Session, 200)
	for i := range ss {
		ss[i] = new(Session)
	}
	ref := map[*Session]int64{} // the tick each session is due at
	// refAt is the tick a deadline is due at when the wheel has processed
	// every tick up to cur.
	refAt := func(deadline, cur int64) int64 {
		return max((deadline+tick-1)/tick, cur+1)
	}
	now := int64(0)
	for step := range 50_000 {
		s := ss[rng.IntN(len(ss))]
		switch r := rng.IntN(10); {
		case r < 5:
			d := now - 5*tick + rng.Int64N(3*wheelSlots*tick)
			w.schedule(s, d)
			ref[s] = refAt(d, w.cur)
		case r < 6:
			w.remove(s)
			delete(ref, s)
		default:
			if rng.IntN(50) == 0 {
				now += rng.Int64N(3 * wheelSlots * tick)
			} else {
				now += rng.Int64N(8 * tick)
			}
			target := now / tick
			want := map[*Session]bool{}
			for s, at := range ref {
				if at <= target {
					want[s] = true
				}
			}
			got := map[*Session]bool{}
			w.advance(now, func(s *Session) {
				if got[s] {
					t.Fatalf("step %d: %p fired twice", step, s)
				}
				got[s] = true
				delete(ref, s)
				if rng.IntN(3) == 0 { // fire re-slots some, as runTimers does
					d := now - 3*tick + rng.Int64N(2*wheelSlots*tick)
					w.schedule(s, d)
					ref[s] = refAt(d, target)
				}
			})
			for s := range want {
				if !got[s] {
					t.Fatalf("step %d: %p due at tick %d not fired by %d", step, s, ref[s], target)
				}
			}
			for s := range got {
				if !want[s] {
					t.Fatalf("step %d: %p fired early", step, s)
				}
			}
		}
		if w.n != len(ref) {
			t.Fatalf("step %d: wheel holds %d sessions, reference %d", step, w.n, len(ref))
		}
	}
}

// TestKickStack: sessions kicked from many goroutines at once, while the
// timer goroutine's side drains, each come out once per drain, and every
// kick is seen by a drain that starts after it.
func TestKickStack(t *testing.T) {
	e := &Endpoint{kickWake: make(chan struct{}, 1)}
	ss := make([]*Session, 500)
	for i := range ss {
		ss[i] = new(Session)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 20_000 {
				e.kick(ss[rng.IntN(len(ss))])
			}
			for _, s := range ss { // every session once more, at the end
				e.kick(s)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	seen := map[*Session]int{}
	drain := func() {
		once := map[*Session]bool{}
		e.takeKicks(func(s *Session) {
			if once[s] {
				t.Fatalf("%p twice in one drain", s)
			}
			once[s] = true
			seen[s]++
		})
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-e.kickWake:
		}
		drain()
	}
	clear(seen)
	for _, s := range ss { // a kick after the drains above starts fresh
		if s.kicked.Load() {
			t.Fatalf("%p still flagged after the last drain", s)
		}
		e.kick(s)
	}
	drain()
	if len(seen) != len(ss) {
		t.Fatalf("%d of %d sessions came out of the last drain", len(seen), len(ss))
	}
}
