package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

func init() {
	pageSets = append(pageSets, func(s *Server) {
		s.page("GET /overview/counters", s.countersFragment)
	})
}

// The forwarded-bytes chart: a sample of the counters at most every
// sampleEvery, taken when a page asks for them (no goroutine of its own),
// kept for chartSpan.
const (
	sampleEvery = 5 * time.Second
	chartSpan   = 10 * time.Minute
)

// dataStats is what the console reads of GET /v1/stats.
type dataStats struct {
	Router struct {
		Forwarded      uint64            `json:"forwarded"`
		ForwardedBytes uint64            `json:"forwarded_bytes"`
		Received       uint64            `json:"received"`
		ICMPErrors     uint64            `json:"icmp_errors"`
		Dropped        map[string]uint64 `json:"dropped"`
		Policy         struct {
			Allowed uint64 `json:"allowed"`
			Blocked uint64 `json:"blocked"`
			Flows   int    `json:"flows"`
		} `json:"policy"`
	} `json:"router"`
}

// sample is the forwarded bytes counter at a time.
type sample struct {
	at    time.Time
	bytes uint64
}

// sampler keeps the recent samples, oldest first.
type sampler struct {
	mu      sync.Mutex
	samples []sample
}

// add records bytes at now, unless the last sample is more recent than
// sampleEvery, drops samples older than chartSpan and returns a copy.
func (p *sampler) add(now time.Time, bytes uint64) []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.samples); n == 0 || now.Sub(p.samples[n-1].at) >= sampleEvery || bytes < p.samples[n-1].bytes {
		if n > 0 && bytes < p.samples[n-1].bytes { // the counters restarted
			p.samples = p.samples[:0]
		}
		p.samples = append(p.samples, sample{now, bytes})
	}
	i := 0
	for i < len(p.samples) && now.Sub(p.samples[i].at) > chartSpan {
		i++
	}
	p.samples = slices.Delete(p.samples, 0, i)
	return slices.Clone(p.samples)
}

// counters is the counters fragment.
type counters struct {
	Forwarded, ForwardedBytes, Received, ICMPErrors uint64
	Allowed, Blocked                                uint64
	Flows                                           int
	Dropped                                         []drop
	DroppedTotal                                    uint64
	Chart                                           chart
}

type drop struct {
	Reason string
	N      uint64
}

// chart is the forwarded-bytes sparkline: a polyline in a W×H box and the
// peak rate it is scaled to.
type chart struct {
	W, H   int
	Points string
	Peak   string // bytes per second at the top
	Now    string // the latest rate
	Empty  bool
}

func (s *Server) countersFragment(q *req) error {
	c, err := q.counters()
	if err != nil {
		return err
	}
	return q.fragment("overview", "counters", overview{Counters: c})
}

// counters reads GET /v1/stats and samples it for the chart.
func (q *req) counters() (counters, error) {
	raw, err := q.api.Stats(q.r.Context())
	if err != nil {
		return counters{}, err
	}
	var st dataStats
	if err := json.Unmarshal(raw, &st); err != nil {
		return counters{}, fmt.Errorf("read the edge's stats: %w", err)
	}
	r := st.Router
	c := counters{Forwarded: r.Forwarded, ForwardedBytes: r.ForwardedBytes, Received: r.Received, ICMPErrors: r.ICMPErrors,
		Allowed: r.Policy.Allowed, Blocked: r.Policy.Blocked, Flows: r.Policy.Flows}
	for reason, n := range r.Dropped {
		c.DroppedTotal += n
		if n > 0 {
			c.Dropped = append(c.Dropped, drop{reason, n})
		}
	}
	slices.SortFunc(c.Dropped, func(a, b drop) int { return strings.Compare(a.Reason, b.Reason) })
	c.Chart = drawChart(q.s.samples.add(time.Now(), r.ForwardedBytes), time.Now())
	return c, nil
}

// drawChart draws the rate between consecutive samples over the last
// chartSpan, ending at now.
func drawChart(ss []sample, now time.Time) chart {
	c := chart{W: 300, H: 60}
	if len(ss) < 2 {
		c.Empty = true
		return c
	}
	type pt struct {
		x    float64
		rate float64
	}
	var pts []pt
	peak := 0.0
	for i := 1; i < len(ss); i++ {
		dt := ss[i].at.Sub(ss[i-1].at).Seconds()
		if dt <= 0 {
			continue
		}
		rate := float64(ss[i].bytes-ss[i-1].bytes) / dt
		x := float64(c.W) * (1 - now.Sub(ss[i].at).Seconds()/chartSpan.Seconds())
		pts = append(pts, pt{x, rate})
		peak = max(peak, rate)
	}
	var b strings.Builder
	for _, p := range pts {
		y := float64(c.H - 2)
		if peak > 0 {
			y = float64(c.H-2) - p.rate/peak*float64(c.H-4)
		}
		fmt.Fprintf(&b, "%.1f,%.1f ", p.x, y)
	}
	c.Points = strings.TrimSpace(b.String())
	c.Peak = rateText(peak)
	c.Now = rateText(pts[len(pts)-1].rate)
	return c
}

func rateText(bps float64) string {
	return funcs["bytes"].(func(uint64) string)(uint64(bps)) + "/s"
}
