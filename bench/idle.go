package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTimes are the machine's CPU times, summed over all CPUs, from the
// "cpu" line of /proc/stat.
type CPUTimes struct {
	// Busy is user, nice, system, irq, softirq and steal: not idle or iowait.
	Busy time.Duration
	// Steal is the time the hypervisor took (vmstat's st).
	Steal time.Duration
	// Total is every counter's sum.
	Total time.Duration
	// Switches are the context switches of every CPU since boot (the ctxt
	// line), 0 when the sample has none.
	Switches uint64
}

// Used is the CPU time the machine itself ran: busy, less what the
// hypervisor took.
func (t CPUTimes) Used() time.Duration { return t.Busy - t.Steal }

// StealShare is the share of the CPU time between t and a later sample u
// that the hypervisor took (0 when no time passed).
func (t CPUTimes) StealShare(u CPUTimes) float64 {
	if u.Total <= t.Total {
		return 0
	}
	return max(u.Steal-t.Steal, 0).Seconds() / (u.Total - t.Total).Seconds()
}

// CPUSample is the machine's CPU times and this process's own, read together.
type CPUSample struct {
	CPUTimes
	Self time.Duration
}

// ParseCPUStat parses the "cpu" and "ctxt" lines of /proc/stat.
func ParseCPUStat(stat []byte) (CPUTimes, error) {
	line, rest, _ := strings.Cut(string(stat), "\n")
	var switches uint64
	for l := range strings.Lines(rest) {
		if v, ok := strings.CutPrefix(l, "ctxt "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("parse /proc/stat ctxt: %w", err)
			}
			switches = n
		}
	}
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return CPUTimes{}, errors.New("parse /proc/stat: no aggregate cpu line with 8 counters")
	}
	var c [8]uint64 // user nice system idle iowait irq softirq steal
	var total uint64
	for i := range c {
		v, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("parse /proc/stat: %w", err)
		}
		c[i], total = v, total+v
	}
	d := func(v uint64) time.Duration { return time.Duration(v) * time.Second / userHZ }
	return CPUTimes{Busy: d(c[0] + c[1] + c[2] + c[5] + c[6] + c[7]), Steal: d(c[7]), Total: d(total), Switches: switches}, nil
}

// MaxStealPct is the percentage of the machine's CPU time the hypervisor
// may take while a path is measured before its figures stop counting as a
// quiet run's: stolen time slows every stage unevenly.
const MaxStealPct = 5

// ReadCPUSample reads /proc/stat and /proc/self/stat.
func ReadCPUSample() (CPUSample, error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUSample{}, fmt.Errorf("read cpu sample: %w", err)
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return CPUSample{}, fmt.Errorf("read cpu sample: %w", err)
	}
	times, err := ParseCPUStat(stat)
	if err != nil {
		return CPUSample{}, err
	}
	own, err := ParseProcStat(self)
	if err != nil {
		return CPUSample{}, err
	}
	return CPUSample{CPUTimes: times, Self: own}, nil
}

// IdlePolicy is when the machine counts as idle: the CPU of everything but
// this process stays below Threshold (in cores: 0.1 is 10% of one core) over
// Window; WaitIdle gives up after Max.
type IdlePolicy struct {
	Threshold float64
	Window    time.Duration
	Max       time.Duration
}

// IdleWait is what WaitIdle found before a path was measured.
type IdleWait struct {
	// Idle is false when the machine never was within Max: the path was
	// measured on a busy machine and its figures are not a quiet run's.
	Idle   bool    `json:"idle"`
	Waited float64 `json:"waited_s"`
	// Load is the other processes' CPU, in cores, over the last window.
	Load      float64 `json:"other_cpu_cores"`
	Threshold float64 `json:"threshold_cores"`
	Err       string  `json:"error,omitempty"`
}

// String says what the wait found, loudly when the machine was busy.
func (w IdleWait) String() string {
	switch {
	case w.Err != "":
		return fmt.Sprintf("NOT IDLE: could not read the machine's load (%s) after %.0f s", w.Err, w.Waited)
	case !w.Idle:
		return fmt.Sprintf("NOT IDLE: other processes still used %.0f%% of a core (limit %.0f%%) after waiting %.0f s; these figures are not a quiet run's",
			100*w.Load, 100*w.Threshold, w.Waited)
	default:
		return fmt.Sprintf("idle after %.1f s (other processes %.0f%% of a core, limit %.0f%%)", w.Waited, 100*w.Load, 100*w.Threshold)
	}
}

// WaitIdle samples the machine every window until the other processes' CPU
// over one window is below the policy's threshold, or Max has passed, or ctx
// ends; sample reads the counters (ReadCPUSample outside tests).
func WaitIdle(ctx context.Context, pol IdlePolicy, sample func() (CPUSample, error)) IdleWait {
	w := IdleWait{Threshold: pol.Threshold}
	start := time.Now()
	prev, err := sample()
	for err == nil {
		select {
		case <-ctx.Done():
			w.Waited = time.Since(start).Seconds()
			w.Err = context.Cause(ctx).Error()
			return w
		case <-time.After(pol.Window):
		}
		var cur CPUSample
		if cur, err = sample(); err != nil {
			break
		}
		other := (cur.Busy - prev.Busy) - (cur.Self - prev.Self)
		w.Load = max(other.Seconds(), 0) / pol.Window.Seconds()
		w.Waited = time.Since(start).Seconds()
		if w.Load < pol.Threshold {
			w.Idle = true
			return w
		}
		if time.Since(start)+pol.Window > pol.Max {
			return w
		}
		prev = cur
	}
	w.Waited = time.Since(start).Seconds()
	w.Err = err.Error()
	return w
}
