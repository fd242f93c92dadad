package edge

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/router"
)

// TestWheel: a session comes due in the tick of its moment (never before,
// and never in the tick being emptied), once however often it is added,
// and a moment beyond the horizon waits in the last slot.
func TestWheel(t *testing.T) {
	tick := int64(livenessTick)
	start := time.Unix(1000, 0).UnixNano()
	tests := []struct {
		name     string
		deadline int64 // relative to start
		due      int   // the tick (1 = the first after start) it comes due in
	}{
		{"past", -5 * tick, 1},
		{"now", 0, 1},
		{"within the first tick", tick / 2, 1},
		{"on a tick", 3 * tick, 3},
		{"between ticks", 3*tick + tick/2, 4},
		{"at the horizon", 1000 * tick, wheelSlots - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &wheel{at: start}
			s := newSession(&router.Peer{}, uuid.New(), nil)
			w.add(s, start+tc.deadline)
			w.add(s, start+tc.deadline) // in once
			got := 0
			for i := 1; i <= wheelSlots+1; i++ {
				calls := 0
				w.advance(start+int64(i)*tick, func(*session) { calls++ })
				if calls > 1 {
					t.Fatalf("came due %d times in tick %d", calls, i)
				}
				if calls == 1 {
					if got != 0 {
						t.Fatalf("came due again in tick %d (first in %d)", i, got)
					}
					got = i
				}
			}
			if got != tc.due {
				t.Fatalf("came due in tick %d, want %d", got, tc.due)
			}
			if s.wheeled {
				t.Fatal("still marked as in the wheel after coming due")
			}
		})
	}
}

// TestWheelAddsBackWhileDue: a session added again while it comes due goes
// to a later tick, not into the slot being emptied.
func TestWheelAddsBackWhileDue(t *testing.T) {
	tick := int64(livenessTick)
	w := &wheel{at: 0}
	s := newSession(&router.Peer{}, uuid.New(), nil)
	w.add(s, tick)
	var dues []int
	for i := 1; i <= 5; i++ {
		w.advance(int64(i)*tick, func(s *session) {
			dues = append(dues, i)
			w.add(s, int64(i)*tick) // due again "now": the next tick
		})
	}
	if len(dues) != 5 || dues[0] != 1 || dues[4] != 5 {
		t.Fatalf("came due in ticks %v, want every tick 1..5", dues)
	}
}

// TestWheelCatchesUp: after a long stall (the wheel not advanced for ten
// revolutions) every session added meanwhile comes due in the first advance
// past its moment, including one placed beyond the horizon.
func TestWheelCatchesUp(t *testing.T) {
	tick := int64(livenessTick)
	w := &wheel{at: 0}
	near, far := newSession(&router.Peer{}, uuid.New(), nil), newSession(&router.Peer{}, uuid.New(), nil)
	w.add(near, 10*tick)
	w.add(far, 3*wheelSlots*tick) // beyond the horizon: placed again as it comes up
	due := map[*session]bool{}
	w.advance(10*wheelSlots*tick, func(s *session) {
		if s == far && w.at < 3*wheelSlots*tick {
			w.add(s, 3*wheelSlots*tick) // not due yet: back in, as the edge does
			return
		}
		due[s] = true
	})
	if !due[near] || !due[far] {
		t.Fatalf("after a stall: near due %v, far due %v; want both", due[near], due[far])
	}
}
