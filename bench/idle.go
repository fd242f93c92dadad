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

// CPUSample is the machine's busy CPU time and this process's own, read together.
type CPUSample struct {
	Busy, Self time.Duration
}

// ParseCPUStat returns the busy time (user, nice, system, irq, softirq,
// steal; not idle or iowait) summed over all CPUs from the "cpu" line of
// /proc/stat.
func ParseCPUStat(stat []byte) (time.Duration, error) {
	f, err := cpuCounters(stat)
	if err != nil {
		return 0, err
	}
	busy := f[0] + f[1] + f[2] + f[5] + f[6] + f[7] // user nice system _idle_ _iowait_ irq softirq steal
	return time.Duration(busy) * time.Second / userHZ, nil
}

// ParseCPUSteal returns the time the hypervisor took from this machine's
// CPUs (steal) and the total of every counter, summed over all CPUs, from
// the "cpu" line of /proc/stat.
func ParseCPUSteal(stat []byte) (steal, total time.Duration, err error) {
	f, err := cpuCounters(stat)
	if err != nil {
		return 0, 0, err
	}
	var sum uint64
	for _, v := range f {
		sum += v
	}
	return time.Duration(f[7]) * time.Second / userHZ, time.Duration(sum) * time.Second / userHZ, nil
}

// cpuCounters parses the first 8 counters of /proc/stat's "cpu" line.
func cpuCounters(stat []byte) ([8]uint64, error) {
	var out [8]uint64
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return out, errors.New("parse /proc/stat: no aggregate cpu line with 8 counters")
	}
	for i := range out {
		v, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return out, fmt.Errorf("parse /proc/stat: %w", err)
		}
		out[i] = v
	}
	return out, nil
}

// MaxSteal is the share of the machine's CPU time the hypervisor may take
// while a path is measured (steal, vmstat's st) before its figures stop
// counting as a quiet run's: stolen time slows every stage unevenly.
const MaxSteal = 0.05

// ReadSteal reads steal and total CPU time from /proc/stat.
func ReadSteal() (steal, total time.Duration, err error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read steal: %w", err)
	}
	return ParseCPUSteal(stat)
}

// StealShare is the share of total CPU time stolen between two ReadSteal
// samples (0 when no time passed).
func StealShare(steal0, total0, steal1, total1 time.Duration) float64 {
	if total1 <= total0 {
		return 0
	}
	return max(steal1-steal0, 0).Seconds() / (total1 - total0).Seconds()
}

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
	busy, err := ParseCPUStat(stat)
	if err != nil {
		return CPUSample{}, err
	}
	own, err := ParseProcStat(self)
	if err != nil {
		return CPUSample{}, err
	}
	return CPUSample{Busy: busy, Self: own}, nil
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
