package wireguard

// wheelSlots is the number of slots of the timer wheel, a power of two. At
// the default 100 ms tick one turn is 51.2 s: longer than the keepalive
// look-ahead (KeepaliveTimeout), so that an established session is looked at
// once per turn at most; a deadline further away simply waits in its slot
// for the turns in between.
const wheelSlots = 512

// wheel is a hashed timer wheel of sessions (Varghese and Lauck, scheme 6):
// a session is linked into the slot of the tick of its next deadline, and a
// tick walks only the slot that comes up. It does not know what a deadline
// is for: the timer goroutine, its only user, recomputes a session's next
// deadline whenever the wheel hands the session back and re-slots it then
// (lazily), so nothing else ever touches the wheel.
type wheel struct {
	tick  int64 // slot width, ns of the endpoint clock
	cur   int64 // last tick processed
	n     int   // sessions linked
	slots [wheelSlots]*Session
}

// wheelLink is a session's place in the wheel; the timer goroutine's alone.
type wheelLink struct {
	next, prev *Session
	at         int64 // tick of the slot the session is in; 0: in none
}

func newWheel(tick, now int64) *wheel {
	return &wheel{tick: tick, cur: now / tick}
}

// schedule puts s in the slot of the first tick at or after deadline (the
// next tick if that is already past), moving it if it was elsewhere.
func (w *wheel) schedule(s *Session, deadline int64) {
	at := (deadline + w.tick - 1) / w.tick
	if at <= w.cur {
		at = w.cur + 1
	}
	if s.wl.at == at {
		return
	}
	w.remove(s)
	head := &w.slots[at&(wheelSlots-1)]
	s.wl = wheelLink{next: *head, at: at}
	if *head != nil {
		(*head).wl.prev = s
	}
	*head = s
	w.n++
}

// remove takes s out of the wheel, if it is in.
func (w *wheel) remove(s *Session) {
	if s.wl.at == 0 {
		return
	}
	if s.wl.prev != nil {
		s.wl.prev.wl.next = s.wl.next
	} else {
		w.slots[s.wl.at&(wheelSlots-1)] = s.wl.next
	}
	if s.wl.next != nil {
		s.wl.next.wl.prev = s.wl.prev
	}
	s.wl = wheelLink{}
	w.n--
}

// advance processes every tick up to now: each session whose tick has come
// is taken out of the wheel and passed to fire, which may schedule it again.
// A slot is walked once per tick, touching the sessions due then and those a
// whole number of turns later; after a stall of a turn or more every slot is
// walked once.
func (w *wheel) advance(now int64, fire func(*Session)) {
	target := now / w.tick
	if target <= w.cur {
		return
	}
	// cur moves first, so that fire schedules at target+1 at the earliest,
	// never into a tick this call has walked already.
	from := w.cur
	w.cur = target
	for k := from + 1; k <= from+min(target-from, wheelSlots); k++ {
		slot := &w.slots[k&(wheelSlots-1)]
		s := *slot
		if s == nil {
			continue
		}
		// Detach the list first: fire may link sessions into this slot
		// again (a turn later), and the walk must not meet them.
		*slot = nil
		for s != nil {
			next := s.wl.next
			if s.wl.at <= target {
				s.wl = wheelLink{}
				w.n--
				fire(s)
			} else { // a later turn: back into the slot
				s.wl.prev, s.wl.next = nil, *slot
				if *slot != nil {
					(*slot).wl.prev = s
				}
				*slot = s
			}
			s = next
		}
	}
}
