package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/internal/etcdtest"
)

// TestEdgeIndex: edges racing for indexes get distinct ones, the lowest
// free first; a name keeps its index across calls (restarts), and a
// forgotten edge's index goes to the next new edge.
func TestEdgeIndex(t *testing.T) {
	url := etcdtest.Start(t)
	ctx := context.Background()
	const n = 6
	got := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = EdgeIndex(ctx, client(t, url), "/sy/", fmt.Sprintf("edge-%d", i))
		}()
	}
	wg.Wait()
	seen := map[int]string{}
	for i, idx := range got {
		if errs[i] != nil {
			t.Fatalf("edge-%d: %v", i, errs[i])
		}
		if other, dup := seen[idx]; dup {
			t.Fatalf("edge-%d and %s both hold index %d", i, other, idx)
		}
		if idx < 0 || idx >= n {
			t.Fatalf("edge-%d got index %d, want one of the %d lowest", i, idx, n)
		}
		seen[idx] = fmt.Sprintf("edge-%d", i)
	}
	for i := range n {
		again, err := EdgeIndex(ctx, client(t, url), "/sy/", fmt.Sprintf("edge-%d", i))
		if err != nil || again != got[i] {
			t.Fatalf("edge-%d again: index %d, %v; want %d as before", i, again, err, got[i])
		}
	}
	if err := ForgetEdge(ctx, client(t, url), "/sy/", "edge-3"); err != nil {
		t.Fatal(err)
	}
	if idx, err := EdgeIndex(ctx, client(t, url), "/sy/", "edge-new"); err != nil || idx != got[3] {
		t.Fatalf("a new edge after edge-3 was forgotten got %d, %v; want edge-3's %d", idx, err, got[3])
	}
}
