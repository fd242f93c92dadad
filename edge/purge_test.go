package edge

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store/memstore"
)

// TestPurgeLoop: the edge's background loop removes a deleted tunnel once
// the registry's clock passes its retention, and stops with its context.
func TestPurgeLoop(t *testing.T) {
	dir := t.TempDir()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	id, err := loadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: id.master, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, _, err := reg.CreateTunnel(ctx, model.NewTunnel{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.DeleteTunnel(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { purgeDeleted(ctx, reg, 5*time.Millisecond, time.Hour, slog.New(slog.DiscardHandler)) })
	defer func() { cancel(); wg.Wait() }()
	deleted := func() int {
		ts, err := reg.ListTunnels(ctx, model.TunnelFilter{ShowDeleted: true})
		if err != nil {
			t.Fatal(err)
		}
		return len(ts)
	}
	time.Sleep(50 * time.Millisecond)
	if n := deleted(); n != 1 {
		t.Fatalf("%d deleted tunnels within the retention period, want 1 (still visible)", n)
	}
	now.Add(int64(2 * time.Hour))
	for deadline := time.Now().Add(5 * time.Second); deleted() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the deleted tunnel was not purged after its retention period")
		}
	}
}
