package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseCPUStat(t *testing.T) {
	got, err := ParseCPUStat([]byte("cpu  100 5 50 9000 40 3 2 1 0 0\ncpu0 50 2 25 4500 20 1 1 0 0 0\nintr 7 1\nctxt 123456\nbtime 1\n"))
	if err != nil || got.Busy != 161*time.Second/userHZ { // user+nice+system+irq+softirq+steal, not idle or iowait
		t.Errorf("ParseCPUStat = %v, %v; want %v", got.Busy, err, 161*time.Second/userHZ)
	}
	if got.Used() != 160*time.Second/userHZ || got.Switches != 123456 {
		t.Errorf("ParseCPUStat: used %v, switches %d; want %v, 123456", got.Used(), got.Switches, 160*time.Second/userHZ)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 x 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 2 3 4 5 6 7 8\nctxt x\n"} {
		if _, err := ParseCPUStat([]byte(bad)); err == nil {
			t.Errorf("ParseCPUStat(%q): no error", bad)
		}
	}
}

func TestWaitIdle(t *testing.T) {
	pol := IdlePolicy{Threshold: 0.1, Window: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	// fake returns samples whose busy time grows by busy[i] per window
	// (clamped to the last), of which self grows by own.
	fake := func(busy []time.Duration, own time.Duration) func() (CPUSample, error) {
		var s CPUSample
		i := -1
		return func() (CPUSample, error) {
			if i >= 0 {
				s.Busy += busy[min(i, len(busy)-1)]
				s.Self += own
			}
			i++
			return s, nil
		}
	}
	ms := time.Millisecond
	// 5 ms of other CPU per 10 ms window is half a core: busy; then 0.5 ms (5%): idle.
	w := WaitIdle(context.Background(), pol, fake([]time.Duration{5 * ms, 5 * ms, ms / 2}, 0))
	if !w.Idle || w.Load >= 0.1 || w.Err != "" {
		t.Errorf("busy then quiet: %+v, want idle", w)
	}
	// Our own CPU does not count: 6 ms per window, all of it ours.
	if w := WaitIdle(context.Background(), pol, fake([]time.Duration{6 * ms}, 6*ms)); !w.Idle {
		t.Errorf("only this process busy: %+v, want idle", w)
	}
	w = WaitIdle(context.Background(), pol, fake([]time.Duration{8 * ms}, ms))
	if w.Idle || w.Load < 0.6 || w.Waited < 0.03 || w.Waited > 1 {
		t.Errorf("always busy: %+v, want not idle after about 50 ms", w)
	}
	if s := w.String(); !strings.HasPrefix(s, "NOT IDLE: other processes still used 70% of a core (limit 10%)") {
		t.Errorf("String = %q", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w := WaitIdle(ctx, pol, fake([]time.Duration{8 * ms}, 0)); w.Idle || !strings.HasPrefix(w.String(), "NOT IDLE: could not read") {
		t.Errorf("cancelled: %+v %q", w, w.String())
	}
}

func TestParseCPUSteal(t *testing.T) {
	got, err := ParseCPUStat([]byte("cpu  100 5 50 9000 40 3 2 1 0 0\n"))
	if err != nil || got.Steal != 1*time.Second/userHZ || got.Total != 9201*time.Second/userHZ {
		t.Errorf("ParseCPUStat = %+v, %v; want steal %v of %v", got, err, time.Second/userHZ, 9201*time.Second/userHZ)
	}
	if _, err := ParseCPUStat([]byte("cpu 1 2 3\n")); err == nil {
		t.Error("ParseCPUStat of a short line: no error")
	}
	if got := (CPUTimes{}).StealShare(CPUTimes{Steal: time.Second, Total: 10 * time.Second}); got != 0.1 {
		t.Errorf("StealShare = %v, want 0.1", got)
	}
	same := CPUTimes{Steal: time.Second, Total: 10 * time.Second}
	if got := same.StealShare(same); got != 0 {
		t.Errorf("StealShare with no time passed = %v, want 0", got)
	}
}

// TestBusyCountsSteal: a path that began on an idle machine but lost more
// than MaxStealPct of its CPU time to the hypervisor is not a quiet run's.
func TestBusyCountsSteal(t *testing.T) {
	r := Results{Paths: []*Path{
		{Name: "quiet", Idle: IdleWait{Idle: true}, Steal: 1},
		{Name: "stolen", Idle: IdleWait{Idle: true}, Steal: MaxStealPct + 1},
		{Name: "busy", Idle: IdleWait{Idle: false}},
	}}
	if got := strings.Join(r.Busy(), ","); got != "stolen,busy" {
		t.Errorf("Busy = %q, want stolen,busy", got)
	}
}
