package wireguard

import (
	"math"
	"math/rand/v2"
	"time"
)

// timerLoop drives every session's timers (paper section 6) from one
// goroutine with a timer wheel: a session waits in the slot of its next
// deadline, and each Timers.Tick looks only at the sessions whose slot comes
// up, so an idle endpoint costs a visit per session per KeepaliveTimeout at
// most, not a pass over the directory per tick. The wheel is this
// goroutine's alone. Other goroutines kick a session (kick: an atomic flag
// and a lock-free push) when they change what its deadlines depend on in a
// way that may bring one forward: a handshake, a key confirmed, a handshake
// asked for, a peer added, changed or removed. The packet path's timestamps
// (lastSent, lastRecv, lastDataSent, lastDataRecv) only ever push deadlines
// back, or create ones at least KeepaliveTimeout away, which the look-ahead
// in nextDeadline covers without a kick.
func (e *Endpoint) timerLoop() {
	tk := time.NewTicker(e.t.Tick)
	defer tk.Stop()
	w := newWheel(int64(e.t.Tick), e.now())
	for {
		select {
		case <-e.closed:
			return
		case <-e.kickWake:
			e.drainKicks(w)
		case <-tk.C:
			e.drainKicks(w)
			now := e.now()
			w.advance(now, func(s *Session) { e.runTimers(w, s, now) })
		}
	}
}

// kick asks the timer goroutine to run s's timers and re-slot it soon. It
// takes no lock and does not allocate: a session is pushed on the kick stack
// at most once until the timer goroutine pops it.
func (e *Endpoint) kick(s *Session) {
	if !s.kicked.CompareAndSwap(false, true) {
		return // on the stack already, and not yet looked at
	}
	for {
		top := e.kicks.Load()
		s.kickNext = top
		if e.kicks.CompareAndSwap(top, s) {
			break
		}
	}
	select {
	case e.kickWake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// drainKicks runs the timers of every kicked session and re-slots it.
func (e *Endpoint) drainKicks(w *wheel) {
	now := e.now()
	e.takeKicks(func(s *Session) { e.runTimers(w, s, now) })
}

// takeKicks empties the kick stack and calls fn for each session on it;
// timer goroutine only.
func (e *Endpoint) takeKicks(fn func(*Session)) {
	for s := e.kicks.Swap(nil); s != nil; {
		next := s.kickNext
		s.kickNext = nil
		s.kicked.Store(false) // from here on a change kicks s again
		fn(s)
		s = next
	}
}

// runTimers runs s's timers that are due and slots s for its next deadline.
func (e *Endpoint) runTimers(w *wheel, s *Session, now int64) {
	e.timerRuns.Add(1)
	e.tickSession(s, now)
	if at, ok := e.nextDeadline(s, now); ok {
		w.schedule(s, at)
	} else {
		w.remove(s)
	}
}

// nextDeadline returns the earliest time at which one of s's timers in
// tickSession may be due, or false if none can be before s is kicked. A
// deadline already past (a duty that could not act, such as a keepalive
// without a key) makes the wheel look again at the next tick, as the full
// pass did.
func (e *Endpoint) nextDeadline(s *Session, now int64) (int64, bool) {
	t := &e.t
	next := int64(math.MaxInt64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed.Load() {
		return 0, false
	}
	keys := false
	for _, p := range [...]*keypairPtr{&s.previous, &s.current, &s.next} {
		if kp := p.Load(); kp != nil {
			keys = true
			next = min(next, kp.created+int64(t.RejectAfterTime))
		}
	}
	hs := &s.hs
	inFlight := hs.inFlight()
	want := s.wantHandshake.Load()
	if inFlight {
		// Retransmission, or giving up after RekeyAttemptTime; the timers
		// that wait for the attempt to end are looked at then.
		next = min(next, hs.lastInitSent+int64(t.RekeyTimeout)+hs.init.jitter)
	} else if want {
		next = min(next, hs.lastInitSent+int64(t.RekeyTimeout)) // asked for too soon
	}
	if ls := s.lastDataSent.Load(); ls > s.lastRecv.Load() && ls != s.deadCheck && !inFlight {
		next = min(next, ls+int64(t.KeepaliveTimeout+t.RekeyTimeout))
	}
	cur := s.current.Load() != nil
	if lr := s.lastDataRecv.Load(); cur && lr > s.lastSent.Load() {
		next = min(next, lr+int64(t.KeepaliveTimeout))
	}
	if keys {
		// Traffic on these keys moves lastDataSent and lastDataRecv without
		// a kick; the earliest deadline that can make is KeepaliveTimeout
		// from its packet's clock reading. Look again a tick before that,
		// for a packet whose clock was read before now but stored after.
		next = min(next, now+max(int64(t.KeepaliveTimeout-t.Tick), int64(t.Tick)))
	}
	// Persistent keepalive: a keepalive on a key, or a handshake to get one
	// (without an endpoint there is nowhere to send either: AddPeer or the
	// peer's handshake, which give one, kick).
	if pk := s.keepalive.Load(); pk > 0 && s.dst.Load() != nil && (cur || !inFlight && !want) {
		next = min(next, s.lastSent.Load()+pk)
	}
	return next, next != math.MaxInt64
}

// tickSession runs one session's timers.
func (e *Endpoint) tickSession(s *Session, now int64) {
	t := &e.t
	var retry, start, keepalive bool
	s.mu.Lock()
	if s.removed.Load() {
		s.mu.Unlock()
		return
	}
	// Keys older than RejectAfterTime are never used again: forget them.
	for _, p := range [...]*keypairPtr{&s.previous, &s.current, &s.next} {
		if kp := p.Load(); kp != nil && now-kp.created >= int64(t.RejectAfterTime) {
			p.Store(nil)
			e.index.remove(kp.localIndex)
		}
	}
	hs := &s.hs
	if hs.inFlight() && now-hs.lastInitSent >= int64(t.RekeyTimeout)+hs.init.jitter {
		if now-hs.init.attemptStart >= int64(t.RekeyAttemptTime) {
			s.dropStaged()
			hs.endInitiation(e.index)
		} else {
			retry = true
		}
	}
	if s.wantHandshake.Swap(false) && !hs.inFlight() {
		start = true
	}
	// Data sent but nothing heard back for KeepaliveTimeout+RekeyTimeout:
	// the peer may have lost its keys, so handshake again (once per burst).
	if ls := s.lastDataSent.Load(); ls > s.lastRecv.Load() && ls != s.deadCheck &&
		now-ls >= int64(t.KeepaliveTimeout+t.RekeyTimeout) && !hs.inFlight() {
		s.deadCheck = ls
		start = true
	}
	// Data received and nothing sent back for KeepaliveTimeout.
	if lr := s.lastDataRecv.Load(); lr > s.lastSent.Load() && now-lr >= int64(t.KeepaliveTimeout) {
		keepalive = true
	}
	if pk := s.keepalive.Load(); pk > 0 && now-s.lastSent.Load() >= pk {
		keepalive = true
		if s.current.Load() == nil && !hs.inFlight() {
			start = true
		}
	}
	s.mu.Unlock()

	switch {
	case retry:
		e.sendInitiation(s, now, true)
	case start:
		e.startHandshake(s, now)
	}
	if keepalive && s.current.Load() != nil {
		e.sendKeepalive(s)
	}
}

// startHandshake begins a new handshake attempt unless one is under way.
// If one was sent less than RekeyTimeout ago it keeps the request for a
// later tick.
func (e *Endpoint) startHandshake(s *Session, now int64) {
	s.mu.Lock()
	inFlight := s.hs.inFlight()
	tooSoon := s.hs.lastInitSent != 0 && now-s.hs.lastInitSent < int64(e.t.RekeyTimeout)
	s.mu.Unlock()
	switch {
	case inFlight:
	case tooSoon:
		s.wantHandshake.Store(true)
	default:
		e.sendInitiation(s, now, false)
	}
}

// sendInitiation sends a handshake initiation to s; retry keeps the
// current attempt's start time.
func (e *Endpoint) sendInitiation(s *Session, now int64, retry bool) {
	dst := s.dst.Load()
	if dst == nil || s.removed.Load() {
		return
	}
	s.mu.Lock()
	attemptStart := now
	if retry && s.hs.init != nil {
		attemptStart = s.hs.init.attemptStart
	}
	msg, err := e.createInitiationLocked(s, now)
	if err != nil {
		s.mu.Unlock()
		e.log.Warn("create handshake initiation", "peer", s.key.String(), "err", err)
		return
	}
	s.hs.lastInitSent = now
	s.hs.init.attemptStart = attemptStart
	s.hs.init.jitter = rand.Int64N(int64(min(maxJitter, e.t.RekeyTimeout/3)) + 1)
	s.mu.Unlock()
	e.stats.hsInitiated.Add(1)
	e.sendRaw(msg[:], dst.ep)
	s.lastSent.Store(now)
}
