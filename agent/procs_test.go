package agent

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

// fakeProcs records what a procGate asks of the runtime.
type fakeProcs struct {
	procs    int // the current setting; 0: the runtime's default
	restored int
}

func (f *fakeProcs) gate(cpus int, pinned bool) *procGate {
	return &procGate{cpus: cpus, pinned: pinned,
		set:     func(n int) { f.procs = n },
		restore: func() { f.procs = 0; f.restored++ }}
}

func TestProcGateHoldsSmallHostToOneP(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var f fakeProcs
	g := f.gate(2, false)
	first := g.acquire(log)
	second := g.acquire(log) // a second session (another edge, a reconnect)
	if f.procs != 1 {
		t.Fatalf("GOMAXPROCS = %d with two MASQUE sessions up, want 1", f.procs)
	}
	first()
	first() // a second call counts nothing
	if f.procs != 1 || f.restored != 0 {
		t.Fatalf("after one of two sessions ended: GOMAXPROCS %d, restored %d times; want 1, 0", f.procs, f.restored)
	}
	second()
	if f.procs != 0 || f.restored != 1 {
		t.Fatalf("after the last session ended: GOMAXPROCS %d, restored %d times; want the default, once", f.procs, f.restored)
	}
	g.acquire(log)()
	if f.restored != 2 {
		t.Fatalf("a later session restored %d times in all, want 2", f.restored)
	}
}

func TestProcGateLeavesOthersAlone(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		name   string
		cpus   int
		pinned bool
	}{{"4 CPUs", 4, false}, {"GOMAXPROCS set", 2, true}, {"1 CPU, GOMAXPROCS set", 1, true}} {
		var f fakeProcs
		g := f.gate(c.cpus, c.pinned)
		release := g.acquire(log)
		if f.procs != 0 {
			t.Errorf("%s: GOMAXPROCS set to %d, want it left alone", c.name, f.procs)
		}
		release()
		if f.restored != 0 {
			t.Errorf("%s: restored the default %d times, want never", c.name, f.restored)
		}
	}
}

// TestProcGateRuntime runs the gate against the real runtime: one P while
// a session is up on a host of at most 2 CPUs, the default after.
func TestProcGateRuntime(t *testing.T) {
	if masqueProcs.pinned || runtime.NumCPU() > smallHost {
		t.Skipf("GOMAXPROCS set or %d CPUs: the gate does nothing here", runtime.NumCPU())
	}
	want := runtime.GOMAXPROCS(0)
	release := masqueProcs.acquire(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := runtime.GOMAXPROCS(0); got != 1 {
		release()
		t.Fatalf("GOMAXPROCS = %d while a MASQUE session is up, want 1", got)
	}
	release()
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("GOMAXPROCS = %d after the session ended, want the default %d", got, want)
	}
}
