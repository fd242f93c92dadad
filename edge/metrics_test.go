package edge

import (
	"os"
	"regexp"
	"testing"
	"time"
)

// TestDashboardMetricsExist checks that every edge metric the Grafana
// dashboard queries is one the edge exports.
func TestDashboardMetricsExist(t *testing.T) {
	l := newEdgeLab(t)
	for deadline := time.Now().Add(5 * time.Second); l.dp.applied.Load() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the data plane applied no snapshot within 5s")
		}
	}
	have := map[string]bool{}
	for _, s := range l.dp.samples() {
		have[s.Name] = true
	}
	dash, err := os.ReadFile("../deploy/grafana/switchyard.json")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`switchyard_edge_[a-z_]+`).FindAllString(string(dash), -1)
	if len(names) == 0 {
		t.Fatal("the dashboard queries no edge metric")
	}
	for _, n := range names {
		if !have[n] {
			t.Errorf("the dashboard queries %s, which the edge does not export", n)
		}
	}
}
