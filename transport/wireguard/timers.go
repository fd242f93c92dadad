package wireguard

import (
	"math/rand/v2"
	"time"
)

// timerLoop drives every session's timers (paper section 6) from one
// goroutine: it wakes every Timers.Tick and whenever a handshake is asked
// for, so the cost is one pass over the directory per tick.
func (e *Endpoint) timerLoop() {
	tk := time.NewTicker(e.t.Tick)
	defer tk.Stop()
	var sessions []*Session
	for {
		select {
		case <-e.closed:
			return
		case s := <-e.initQueue:
			if s.wantHandshake.Swap(false) {
				e.startHandshake(s, e.now())
			}
		case <-tk.C:
			sessions = e.appendSessions(sessions[:0])
			now := e.now()
			for _, s := range sessions {
				e.tickSession(s, now)
			}
			clear(sessions)
		}
	}
}

func (e *Endpoint) appendSessions(dst []*Session) []*Session {
	e.peersMu.RLock()
	defer e.peersMu.RUnlock()
	for _, s := range e.peers {
		dst = append(dst, s)
	}
	return dst
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
	if hs.state == hsInitSent && now-hs.lastInitSent >= int64(t.RekeyTimeout)+hs.jitter {
		if now-hs.attemptStart >= int64(t.RekeyAttemptTime) {
			s.dropStaged()
			e.index.remove(hs.localIndex)
			hs.state = hsNone
			clear(hs.ephemeral[:])
		} else {
			retry = true
		}
	}
	if s.wantHandshake.Swap(false) && hs.state != hsInitSent {
		start = true
	}
	// Data sent but nothing heard back for KeepaliveTimeout+RekeyTimeout:
	// the peer may have lost its keys, so handshake again (once per burst).
	if ls := s.lastDataSent.Load(); ls > s.lastRecv.Load() && ls != s.deadCheck &&
		now-ls >= int64(t.KeepaliveTimeout+t.RekeyTimeout) && hs.state != hsInitSent {
		s.deadCheck = ls
		start = true
	}
	// Data received and nothing sent back for KeepaliveTimeout.
	if lr := s.lastDataRecv.Load(); lr > s.lastSent.Load() && now-lr >= int64(t.KeepaliveTimeout) {
		keepalive = true
	}
	if pk := s.keepalive.Load(); pk > 0 && now-s.lastSent.Load() >= pk {
		keepalive = true
		if s.current.Load() == nil && hs.state != hsInitSent {
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
	inFlight := s.hs.state == hsInitSent
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
	if !retry {
		s.hs.attemptStart = now
	}
	msg, err := e.createInitiationLocked(s, now)
	if err != nil {
		s.mu.Unlock()
		e.log.Warn("create handshake initiation", "peer", s.key.String(), "err", err)
		return
	}
	s.hs.lastInitSent = now
	s.hs.jitter = rand.Int64N(int64(min(maxJitter, e.t.RekeyTimeout/3)) + 1)
	s.mu.Unlock()
	e.stats.hsInitiated.Add(1)
	e.sendRaw(msg[:], dst.ep)
	s.lastSent.Store(now)
}
