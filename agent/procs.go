package agent

import (
	"log/slog"
	"os"
	"runtime"
	"sync"
)

// smallHost is the most CPUs a host may have for the agent to run on one P
// while it carries MASQUE.
//
// A MASQUE packet crosses a chain of goroutines (the TUN reader, quic-go's
// run loop and send queue, HTTP/3's datagram dispatcher, the session's
// reader and the TUN writer), and with a P idle every hand-off wakes a
// thread that finds little to do and sleeps again. On 2 CPUs, shared with
// the kernel's network work and the site's own processes, those wakeups
// cost more than the parallelism gains: in make bench's MASQUE path (two
// connectors and the edge on 2 CPUs) connectors on one P spent about a
// third less CPU per GB, with half as many context switches, and moved a
// third more. quic-go runs each connection's packets on its one run loop
// anyway. With more CPUs the agent keeps Go's default, so that a big
// gateway's MASQUE is not held to one core.
const smallHost = 2

// procGate holds the process to one P while any MASQUE session is up on a
// small host, and gives the runtime its default back when the last ends.
// GOMAXPROCS in the environment always wins: the gate then does nothing.
type procGate struct {
	cpus    int
	pinned  bool            // GOMAXPROCS is set in the environment
	set     func(procs int) // runtime.GOMAXPROCS
	restore func()          // runtime.SetDefaultGOMAXPROCS

	mu       sync.Mutex
	sessions int
}

// masqueProcs is the process's gate.
var masqueProcs = procGate{cpus: runtime.NumCPU(), pinned: os.Getenv("GOMAXPROCS") != "",
	set: func(n int) { runtime.GOMAXPROCS(n) }, restore: runtime.SetDefaultGOMAXPROCS}

// acquire counts a MASQUE session that is up; the returned func counts it
// down and must be called once.
func (g *procGate) acquire(log *slog.Logger) (release func()) {
	if g.pinned || g.cpus > smallHost {
		return func() {}
	}
	g.mu.Lock()
	if g.sessions++; g.sessions == 1 {
		g.set(1)
		log.Info("MASQUE on a small host: Go runs on one CPU while the session is up (GOMAXPROCS in the environment overrides this)", "cpus", g.cpus)
	}
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			if g.sessions--; g.sessions == 0 {
				g.restore()
			}
			g.mu.Unlock()
		})
	}
}
