package web_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestOverviewCounters sees the data plane's counters on the overview and
// the chart fill in as the fragment refreshes itself.
func TestOverviewCounters(t *testing.T) {
	l := startLab(t)
	l.signIn(t)
	if got := l.text(t, `#forwarded`); got != "0" {
		t.Fatalf("forwarded %q on an edge without agents", got)
	}
	l.text(t, `#drops`)
	// A second sample comes with the fragment's refresh, 5 s later.
	get(t, l, "the chart draws", chromedp.Poll[bool](`document.querySelector("#bytes-chart polyline") !== null`))
	if got := l.text(t, `#rate-now`); got != "0 B/s" {
		t.Fatalf("rate now %q, want 0 B/s", got)
	}
	l.shot(t, "overview")
}
