package wireguard

import (
	"slices"
	"time"
)

// The agent's path MTU search, one per edge session and direction, in the
// spirit of RFC 8899 (DPLPMTUD): sizes are outer IP packet sizes. A
// search sends a coarse ladder at once (coarseStep apart, from the ceiling
// down to the base), then a fine round (fineStep apart) inside the gap the
// coarse one left; a size passes if any of maxTries tries is answered. If
// the base fails, an IPv4 path goes down belowBase. The decided size is
// confirmed every confirmEvery; confirmMisses misses in a row (retried at
// once) fall back to the base and search again, so a path that shrinks is
// noticed within seconds; a search up runs every researchEvery, and on Kick.
const (
	// PMTUBase is the search's safe base: the IPv6 minimum link MTU.
	PMTUBase        = 1280
	coarseStep      = 64
	fineStep        = 8
	maxTries        = 3
	confirmEvery    = 2 * time.Second
	confirmMisses   = 3
	researchEvery   = 10 * time.Minute
	retryFailed     = 5 * time.Second // after a search where nothing passed
	probeTimeout    = 300 * time.Millisecond
	maxProbeTimeout = 600 * time.Millisecond
	// belowBaseResearch is how soon a result below the base is searched up
	// again (the base may have failed only while the path was down).
	belowBaseResearch = time.Minute
)

// belowBase is where an IPv4 path goes when the base fails.
var belowBase = []int{1124, 1024, 900, 768, 576}

type pmtuDir int

const (
	dirForward pmtuDir = iota // agent → edge: PROBE answered by ACK
	dirReverse                // edge → agent: RPROBE
)

func (d pmtuDir) String() string {
	if d == dirForward {
		return "agent to edge"
	}
	return "edge to agent"
}

type roundKind int

const (
	roundNone roundKind = iota
	roundCoarse
	roundBelow
	roundFine
	roundConfirm
)

// pmtuTry is one size of a round.
type pmtuTry struct {
	size     int
	nonce    uint64
	tries    int
	sentAt   time.Duration
	answered bool
	failed   bool
}

// probeReq is a probe the search wants sent.
type probeReq struct {
	dir   pmtuDir
	size  int // outer IP packet size
	nonce uint64
}

// dirSearch is one direction's state.
type dirSearch struct {
	cur        int // decided outer size; 0: none yet
	round      roundKind
	tries      []pmtuTry
	lo, hi     int // during a search: largest passed, smallest failed
	misses     int
	next       time.Duration // when the next confirmation or search starts
	lastSearch time.Duration
	searched   bool // a search has finished at least once
	force      bool // kick: search rather than confirm
}

// pmtuSearch is both directions' searches of one session; it is not safe
// for concurrent use (Prober locks it) and reads no clock: callers pass
// the time, so tests drive it.
type pmtuSearch struct {
	ceiling int
	below   []int // nil on an IPv6 path
	timeout time.Duration
	nonce   func() uint64
	d       [2]dirSearch
}

func newPMTUSearch(ceiling int, ipv6 bool, nonce func() uint64) *pmtuSearch {
	s := &pmtuSearch{ceiling: ceiling, timeout: probeTimeout, nonce: nonce}
	if !ipv6 {
		s.below = belowBase
	}
	return s
}

// coarseSizes is the ladder from the ceiling down to the base.
func (s *pmtuSearch) coarseSizes() []int {
	if s.ceiling <= PMTUBase {
		return []int{s.ceiling}
	}
	var out []int
	for v := s.ceiling; v > PMTUBase; v -= coarseStep {
		out = append(out, v)
	}
	return append(out, PMTUBase)
}

func (s *pmtuSearch) start(d *dirSearch, k roundKind, sizes []int) {
	d.round = k
	d.tries = d.tries[:0]
	for _, v := range sizes {
		d.tries = append(d.tries, pmtuTry{size: v, nonce: s.nonce()})
	}
}

// kick makes both directions search again now, or once the search under
// way ends (its result may predate what the kick reports).
func (s *pmtuSearch) kick(now time.Duration) {
	for i := range s.d {
		d := &s.d[i]
		d.force = true
		if d.round != roundCoarse && d.round != roundFine && d.round != roundBelow {
			d.round, d.next = roundNone, now
		}
	}
}

// step sends what is due at now and says when to call it again.
func (s *pmtuSearch) step(now time.Duration, out []probeReq) ([]probeReq, time.Duration) {
	wake := now + time.Hour
	for i := range s.d {
		d := &s.d[i]
		dir := pmtuDir(i)
		if d.round == roundNone {
			if now < d.next {
				wake = min(wake, d.next)
				continue
			}
			if d.cur > 0 && d.searched && !d.force && now-d.lastSearch < researchEvery && d.misses < confirmMisses {
				s.start(d, roundConfirm, []int{d.cur})
			} else {
				d.lo, d.hi = 0, s.ceiling+1
				d.misses, d.force = 0, false
				s.start(d, roundCoarse, s.coarseSizes())
			}
		}
		limit := maxTries
		if d.round == roundConfirm {
			limit = 1
		}
		busy := false
		for j := range d.tries {
			t := &d.tries[j]
			if t.answered || t.failed {
				continue
			}
			if t.tries > 0 && now-t.sentAt < s.timeout {
				busy = true
				wake = min(wake, t.sentAt+s.timeout)
				continue
			}
			if t.tries >= limit {
				t.failed = true
				continue
			}
			t.tries++
			t.sentAt = now
			out = append(out, probeReq{dir: dir, size: t.size, nonce: t.nonce})
			busy = true
			wake = min(wake, now+s.timeout)
		}
		if !busy {
			s.finish(d, dir, now)
			if d.round != roundNone {
				return s.step(now, out) // the next round starts at once
			}
			wake = min(wake, d.next)
		}
	}
	return out, wake
}

// answer records an answer to the probe with nonce for dir; it reports
// whether the nonce was one in flight.
func (s *pmtuSearch) answer(dir pmtuDir, nonce uint64) bool {
	d := &s.d[dir]
	for j := range d.tries {
		if t := &d.tries[j]; t.nonce == nonce && !t.failed {
			t.answered = true
			return true
		}
	}
	return false
}

// failNow marks a size of dir failed at once (the local link refused it).
func (s *pmtuSearch) failNow(dir pmtuDir, nonce uint64) {
	d := &s.d[dir]
	for j := range d.tries {
		if t := &d.tries[j]; t.nonce == nonce && !t.answered {
			t.failed = true
		}
	}
}

// finish ends d's round and picks what follows.
func (s *pmtuSearch) finish(d *dirSearch, dir pmtuDir, now time.Duration) {
	k := d.round
	d.round = roundNone
	if k == roundConfirm {
		if d.tries[0].answered {
			d.misses = 0
			d.next = now + confirmEvery
			return
		}
		d.misses++
		d.next = now // a quick retry, or a search after confirmMisses
		if d.misses >= confirmMisses && d.cur > PMTUBase {
			// A black hole (RFC 8899, 4.3): fall back to the base at once,
			// then search up from it.
			d.cur = PMTUBase
		}
		return
	}
	for _, t := range d.tries {
		if t.answered {
			d.lo = max(d.lo, t.size)
		}
	}
	for _, t := range d.tries {
		if !t.answered && t.size > d.lo {
			d.hi = min(d.hi, t.size)
		}
	}
	if d.lo == 0 {
		if k == roundCoarse && s.below != nil {
			s.start(d, roundBelow, s.below)
			return
		}
		// Nothing passed: the path is down rather than small. Keep what
		// was decided and search again (not confirm) later.
		d.next, d.force = now+retryFailed, true
		return
	}
	if k != roundFine && d.hi-d.lo > fineStep {
		var sizes []int
		for v := d.lo + fineStep; v < d.hi; v += fineStep {
			sizes = append(sizes, v)
		}
		if len(sizes) > 0 {
			slices.Reverse(sizes)
			s.start(d, roundFine, sizes)
			return
		}
	}
	d.searched, d.lastSearch, d.misses = true, now, 0
	if d.lo < PMTUBase {
		d.lastSearch = now - researchEvery + belowBaseResearch // the base may come back
	}
	d.next = now + confirmEvery
	if d.lo != d.cur {
		d.cur = d.lo
		d.next = now // a confirmation at once tells the edge (every probe carries the result)
	}
}

// searching reports whether dir has not decided a size yet.
func (s *pmtuSearch) searching(dir pmtuDir) bool { return s.d[dir].cur == 0 }
