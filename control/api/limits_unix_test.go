//go:build unix

package api_test

import (
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/api"
)

// idleConns is how many idle connections TestIdleConnectionsAreClosed opens:
// the 3000, each costing two file descriptors in this process.
const idleConns = 3000

// fdBudget raises this process's RLIMIT_NOFILE towards want and returns how
// many descriptors it may use.
func fdBudget(t *testing.T, want uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit(RLIMIT_NOFILE): %v", err)
	}
	if lim.Cur < want {
		raised := lim
		raised.Cur = min(want, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	return lim.Cur
}

// Idle connections cost the server nothing for long: 3000 keep-alive
// connections, none with a credential, each of which sent one request, are
// closed within the idle timeout, and the server's goroutines and heap
// return to their baseline. (A connection that never sends a request is
// closed by ReadHeaderTimeout, as before.)
func TestIdleConnectionsAreClosed(t *testing.T) {
	const idle = time.Second
	n := idleConns
	if budget := fdBudget(t, 2*idleConns+256); budget < 2*idleConns+256 {
		n = int(budget-256) / 2
		t.Logf("RLIMIT_NOFILE is %d: opening %d connections instead of %d", budget, n, idleConns)
	}
	// The handshakes take seconds under the race detector: a long header
	// timeout holds every connection until all are open, then each sends
	// its request and goes idle.
	l := newLimitedLab(t, api.Limits{ReadHeaderTimeout: time.Minute, IdleTimeout: idle})
	// One request first, so that the baseline holds what any first request
	// allocates once (the server's TLS state, the mux's caches).
	l.keepAlive(t).Close()
	l.waitClosed(t, 1, 10*time.Second)
	goroutines, heap := settle()

	conns := make([]net.Conn, n)
	parallel := func(fn func(i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		work := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range work {
					if err := fn(i); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	start := time.Now()
	parallel(func(i int) error {
		c, err := tls.Dial("tcp", l.addr, l.tls)
		conns[i] = c
		return err
	})
	held, _, _ := l.counts()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("opened %d connections in %v; held: %d, with %d goroutines more and %.1f MB more heap (client and server)",
		n, time.Since(start).Round(time.Millisecond), held, runtime.NumGoroutine()-goroutines, float64(int64(ms.HeapAlloc)-int64(heap))/1e6)
	if held != n {
		t.Fatalf("the server holds %d connections, want %d", held, n)
	}
	start = time.Now()
	parallel(func(i int) error { return request(conns[i]) })

	// Every connection closes within the idle timeout of its response,
	// give or take a loaded machine.
	const slack = 3 * time.Second
	longest := l.waitClosed(t, n+1, time.Since(start)+idle+slack)
	if longest > idle+slack {
		t.Fatalf("an idle connection stayed open %v, want the idle timeout of %v", longest, idle)
	}
	t.Logf("the longest an idle connection stayed open: %v", longest.Round(time.Millisecond))
	for _, c := range conns {
		c.Close()
	}
	conns = nil

	deadline := time.Now().Add(10 * time.Second)
	for {
		g, h := settle()
		if g <= goroutines+4 && h <= heap+4<<20 {
			t.Logf("after: %+d goroutines, %+.1f MB heap against the baseline", g-goroutines, float64(int64(h)-int64(heap))/1e6)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing: %d goroutines (baseline %d), heap %.1f MB (baseline %.1f MB)", g, goroutines, float64(h)/1e6, float64(heap)/1e6)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settle collects garbage and returns the goroutine count and live heap.
func settle() (goroutines int, heap uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}
