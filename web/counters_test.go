package web

import (
	"strings"
	"testing"
	"time"
)

// TestSampler checks the chart's samples: at most one per sampleEvery, none
// older than chartSpan, a restart of the counters starting afresh.
func TestSampler(t *testing.T) {
	var p sampler
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.add(t0, 100)
	if got := p.add(t0.Add(time.Second), 200); len(got) != 1 {
		t.Fatalf("a second sample within %v: %v", sampleEvery, got)
	}
	for i := 1; i <= 200; i++ {
		p.add(t0.Add(time.Duration(i)*sampleEvery), uint64(100+i*1000))
	}
	got := p.add(t0.Add(200*sampleEvery), 0)
	if len(got) != 1 || got[0].bytes != 0 {
		t.Fatalf("after a restart of the counters: %v", got)
	}
	p = sampler{}
	var ss []sample
	for i := 0; i <= 200; i++ {
		ss = p.add(t0.Add(time.Duration(i)*sampleEvery), uint64(i*5000))
	}
	if want := int(chartSpan/sampleEvery) + 1; len(ss) != want {
		t.Fatalf("%d samples kept, want %d", len(ss), want)
	}
	c := drawChart(ss, t0.Add(200*sampleEvery))
	if c.Empty || c.Now != "1.0 kB/s" || c.Peak != "1.0 kB/s" || !strings.HasSuffix(c.Points, "300.0,2.0") {
		t.Fatalf("chart of a steady 1 kB/s: %+v", c)
	}
}
