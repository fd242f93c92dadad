package wireguard

import (
	"testing"
	"time"
)

// fakePath runs a pmtuSearch against a path that carries sizes up to
// fwd/rev, answering after rtt, losing the first try of every size in lose.
type fakePath struct {
	s        *pmtuSearch
	now      time.Duration
	fwd, rev int
	lose     map[int]bool // sizes whose first try is lost
	tried    map[int]int
	sent     int
	pending  []probeReq
	down     bool
}

func newFakePath(ceiling int, ipv6 bool, fwd, rev int) *fakePath {
	n := uint64(0)
	return &fakePath{s: newPMTUSearch(ceiling, ipv6, func() uint64 { n++; return n }), fwd: fwd, rev: rev, tried: map[int]int{}, lose: map[int]bool{}}
}

// run advances the fake clock until d has passed.
func (f *fakePath) run(d time.Duration) {
	end := f.now + d
	for f.now < end {
		var out []probeReq
		out, wake := f.s.step(f.now, nil)
		for _, r := range out {
			f.sent++
			f.tried[r.size]++
			limit := f.fwd
			if r.dir == dirReverse {
				limit = f.rev
			}
			if f.down || r.size > limit || (f.lose[r.size] && f.tried[r.size] == 1) {
				continue
			}
			f.pending = append(f.pending, r)
		}
		next := min(wake, f.now+20*time.Millisecond)
		f.now = max(next, f.now+time.Millisecond)
		for _, r := range f.pending { // answered within 20 ms
			f.s.answer(r.dir, r.nonce)
		}
		f.pending = f.pending[:0]
	}
}

func (f *fakePath) cur() (int, int) { return f.s.d[dirForward].cur, f.s.d[dirReverse].cur }

func TestPMTUSearch(t *testing.T) {
	const ceiling = 1420 + OverheadIPv4
	for _, tc := range []struct {
		name         string
		ipv6         bool
		fwd, rev     int
		lose         []int
		wantF, wantR int
	}{
		{name: "ceiling", fwd: 1500, rev: 1500, wantF: ceiling, wantR: ceiling},
		{name: "base", fwd: 1280, rev: 1280, wantF: 1280, wantR: 1280},
		{name: "asymmetric", fwd: 1400, rev: 1300, wantF: 1400, wantR: 1296},
		{name: "below base", fwd: 1200, rev: 1024, wantF: 1196, wantR: 1024},
		{name: "lost try", fwd: 1500, rev: 1280, lose: []int{ceiling, 1280}, wantF: ceiling, wantR: 1280},
		{name: "ipv6 never below base", ipv6: true, fwd: 1200, rev: 1500, wantF: 0, wantR: ceiling},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePath(ceiling, tc.ipv6, tc.fwd, tc.rev)
			for _, v := range tc.lose {
				f.lose[v] = true
			}
			d := 2 * time.Second
			if tc.fwd < 1280 || tc.rev < 1280 {
				d = 3 * time.Second // a third round, below the base
			}
			f.run(d)
			if gf, gr := f.cur(); gf != tc.wantF || gr != tc.wantR {
				t.Fatalf("after %v: forward %d reverse %d, want %d %d", d, gf, gr, tc.wantF, tc.wantR)
			}
		})
	}
}

// TestPMTUSearchShrink: confirmations notice a path that shrinks within
// seconds and search again; after a total loss nothing changes, and the
// size is found again when the path comes back.
func TestPMTUSearchShrink(t *testing.T) {
	const ceiling = 1420 + OverheadIPv4
	f := newFakePath(ceiling, false, 1500, 1500)
	f.run(2 * time.Second)
	if gf, gr := f.cur(); gf != ceiling || gr != ceiling {
		t.Fatalf("start: %d %d", gf, gr)
	}
	before := f.sent
	f.run(20 * time.Second)
	if per := float64(f.sent-before) / 20; per > 2 {
		t.Fatalf("confirming sends %.1f probes a second", per)
	}
	f.fwd, f.rev = 1280, 1280
	f.run(confirmEvery + confirmMisses*probeTimeout + 10*time.Millisecond)
	if gf, gr := f.cur(); gf != 1280 || gr != 1280 {
		t.Fatalf("%v after the path shrank: %d %d, want 1280", confirmEvery+confirmMisses*probeTimeout, gf, gr)
	}
	f.fwd, f.rev = 1400, 1400 // the search up from the base finds the rest
	f.s.kick(f.now)
	f.run(2 * time.Second)
	if gf, gr := f.cur(); gf != 1400 || gr != 1400 {
		t.Fatalf("1400 after the black hole: %d %d", gf, gr)
	}
	f.fwd, f.rev = 1280, 1280
	f.run(5 * time.Second)
	f.down = true
	f.run(30 * time.Second)
	if gf, gr := f.cur(); gf != 1280 || gr != 1280 {
		t.Fatalf("a path down changed the size to %d %d", gf, gr)
	}
	f.down, f.fwd, f.rev = false, 1500, 1500
	f.s.kick(f.now)
	f.run(2 * time.Second)
	if gf, gr := f.cur(); gf != ceiling || gr != ceiling {
		t.Fatalf("after a kick: %d %d, want the ceiling", gf, gr)
	}
	// Down at the ceiling: a black hole falls back to the base (a dead
	// path looks like a small one), and the searches while nothing passes
	// find the ceiling again soon after the path is back, kick or not.
	f.down = true
	f.run(10 * time.Second)
	if gf, gr := f.cur(); gf != PMTUBase || gr != PMTUBase {
		t.Fatalf("down: %d %d, want the base", gf, gr)
	}
	f.down = false
	f.run(retryFailed + 2*time.Second)
	if gf, gr := f.cur(); gf != ceiling || gr != ceiling {
		t.Fatalf("back without a kick: %d %d, want the ceiling", gf, gr)
	}
}

// TestPMTUSearchUp: a path that grows is found by the periodic search up.
func TestPMTUSearchUp(t *testing.T) {
	const ceiling = 1420 + OverheadIPv4
	f := newFakePath(ceiling, false, 1280, 1280)
	f.run(2 * time.Second)
	f.fwd, f.rev = 1500, 1500
	f.run(researchEvery + 5*time.Second)
	if gf, gr := f.cur(); gf != ceiling || gr != ceiling {
		t.Fatalf("after %v: %d %d, want the ceiling", researchEvery, gf, gr)
	}
}

// TestPMTUSearchBelowBaseUp: a result below the base is searched up again
// within belowBaseResearch, not researchEvery.
func TestPMTUSearchBelowBaseUp(t *testing.T) {
	const ceiling = 1420 + OverheadIPv4
	f := newFakePath(ceiling, false, 1200, 1200)
	f.run(3 * time.Second)
	if gf, gr := f.cur(); gf != 1196 || gr != 1196 {
		t.Fatalf("below the base: %d %d, want 1196", gf, gr)
	}
	f.fwd, f.rev = 1500, 1500
	f.run(belowBaseResearch + 3*time.Second)
	if gf, gr := f.cur(); gf != ceiling || gr != ceiling {
		t.Fatalf("%v later: %d %d, want the ceiling", belowBaseResearch, gf, gr)
	}
}
