package registry

import (
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store/memstore"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestPurgeDeleted: deleted vnets, tunnels and routes stay visible for the
// retention period, then PurgeDeleted removes them; live records stay.
func TestPurgeDeleted(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	r, err := New(ctx, st, Options{Secrets: fixedSecrets{}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	must(r.CreateVNet(ctx, model.NewVNet{Name: "old"}))(t)
	must(r.CreateVNet(ctx, model.NewVNet{Name: "kept"}))(t)
	must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "old-site"}))
	must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "site"}))
	must(r.AddRoute(ctx, model.NewRoute{Network: mpp("192.0.2.0/24"), Tunnel: "old-site", VNet: "old"}))(t)
	must(r.AddRoute(ctx, model.NewRoute{Network: mpp("198.51.100.0/24"), Tunnel: "site", VNet: "kept"}))(t)
	must(r.AddRoute(ctx, model.NewRoute{Network: mpp("203.0.113.0/24"), Tunnel: "site", VNet: "kept"}))(t)
	must(r.DeleteVNet(ctx, "old", true))(t)
	must(r.DeleteTunnel(ctx, "old-site", true))(t)
	must(r.DeleteRoute(ctx, "kept", "203.0.113.0/24"))(t)

	count := func() (vnets, tunnels, routes int) {
		return len(must(r.ListVNets(ctx, model.VNetFilter{ShowDeleted: true}))(t)),
			len(must(r.ListTunnels(ctx, model.TunnelFilter{ShowDeleted: true}))(t)),
			len(must(r.ListRoutes(ctx, model.RouteFilter{ShowDeleted: true}))(t))
	}
	clock.advance(DefaultDeletedRetention - time.Minute)
	if n := must(r.PurgeDeleted(ctx, DefaultDeletedRetention))(t); n != 0 {
		t.Fatalf("purged %d records within the retention period", n)
	}
	if v, tu, rt := count(); v != 3 || tu != 2 || rt != 3 {
		t.Fatalf("within retention: %d vnets, %d tunnels, %d routes; want the deleted ones visible (3, 2, 3)", v, tu, rt)
	}
	clock.advance(2 * time.Minute)
	if n := must(r.PurgeDeleted(ctx, DefaultDeletedRetention))(t); n != 4 {
		t.Fatalf("purged %d records after the retention period, want 4 (vnet, tunnel, 2 routes)", n)
	}
	if v, tu, rt := count(); v != 2 || tu != 1 || rt != 1 {
		t.Fatalf("after purge: %d vnets, %d tunnels, %d routes; want the live ones (2, 1, 1)", v, tu, rt)
	}
	if _, err := r.GetRoute(ctx, "kept", mpp("198.51.100.7/32").Addr()); err != nil {
		t.Fatalf("the live route after purge: %v", err)
	}
	if _, err := r.PurgeDeleted(ctx, -time.Hour); err == nil {
		t.Fatal("a negative retention was accepted")
	}
}
