package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// TestAgentConfigListsTheClusterEdges: in a cluster, a connector's
// configuration lists every healthy edge with a WireGuard key as an agent
// reaches it, this edge first, with each edge's own heartbeat addresses; a
// single edge's configuration has no such list, byte for byte as before.
func TestAgentConfigListsTheClusterEdges(t *testing.T) {
	ctx := context.Background()
	enroll := func(t *testing.T, admin *client.Client) (model.ConnectorConfig, string) {
		t.Helper()
		tun, err := admin.CreateTunnel(ctx, "fra")
		if err != nil {
			t.Fatal(err)
		}
		agent, tok, err := client.NewConnector(tun.Token)
		if err != nil {
			t.Fatal(err)
		}
		enrolled, err := agent.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: wgKey(), Hostname: "gw-fra"})
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, _, err := agent.WatchConnectorConfig(ctx, enrolled.Connector.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.Edge.Edges, enrolled.Config.Edge.Edges) {
			t.Errorf("the enrollment lists edges %+v, the configuration %+v", enrolled.Config.Edge.Edges, cfg.Edge.Edges)
		}
		return cfg, tok.API
	}

	t.Run("single edge", func(t *testing.T) {
		admin, _, _ := newPinnedAPI(t)
		cfg, _ := enroll(t, admin)
		got, _ := json.Marshal(cfg.Edge)
		if want := `{"endpoint":"192.0.2.1:51820","public_key":"k","masque":"192.0.2.1:443"}`; string(got) != want {
			t.Errorf("a single edge's peer = %s, want %s", got, want)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		var self string // this edge's API URL, known once the server runs
		hb := func(s string) netip.Addr { return netip.MustParseAddr(s) }
		admin, _, _ := newPinnedAPIWith(t, func(o *api.Options) {
			o.Edges = func(context.Context) ([]model.Edge, error) {
				return []model.Edge{
					{Name: "edge-a", API: "https://192.0.2.2:7443", WireGuard: "192.0.2.2:51820", PublicKey: "ka", MASQUE: "192.0.2.2:443",
						Heartbeat: hb("100.111.255.253"), Heartbeat6: hb("fd00:5359:6564:6765::3"), Healthy: true},
					{Name: "edge-b", API: self, WireGuard: "192.0.2.1:51820", PublicKey: "k",
						Heartbeat: hb("100.111.255.254"), Heartbeat6: hb("fd00:5359:6564:6765::2"), Healthy: true},
					{Name: "edge-c", API: "https://192.0.2.3:7443", WireGuard: "192.0.2.3:51820", PublicKey: "kc"}, // down
					{Name: "edge-d", API: "https://192.0.2.4:7443", WireGuard: "192.0.2.4:51820", Healthy: true},   // no key of its own
				}, nil
			}
		})
		tun, err := admin.CreateTunnel(ctx, "warmup") // learn this edge's API URL from a token
		if err != nil {
			t.Fatal(err)
		}
		_, tok, err := client.NewConnector(tun.Token)
		if err != nil {
			t.Fatal(err)
		}
		self = tok.API
		cfg, _ := enroll(t, admin)
		want := []model.ClusterEdge{
			{Name: "edge-b", Endpoint: "192.0.2.1:51820", PublicKey: "k", Heartbeat: hb("100.111.255.254"), Heartbeat6: hb("fd00:5359:6564:6765::2")},
			{Name: "edge-a", Endpoint: "192.0.2.2:51820", PublicKey: "ka", MASQUE: "192.0.2.2:443", Heartbeat: hb("100.111.255.253"), Heartbeat6: hb("fd00:5359:6564:6765::3")},
		}
		if !slices.Equal(cfg.Edge.Edges, want) {
			t.Errorf("the configuration lists edges\n%+v\nwant\n%+v", cfg.Edge.Edges, want)
		}
		if cfg.Edge.Endpoint != "192.0.2.1:51820" || cfg.Edge.PublicKey != "k" {
			t.Errorf("the configuration's own edge = %+v", cfg.Edge)
		}
	})
}

// TestLongPollsWakeWhenTheEdgesChange: configuration long polls that wait
// answer at once when the cluster's healthy edges change (an edge comes
// back), with the new list, long before their wait or the cached list's
// TTL ends; the edges are listed again once for all of them, not once per
// poll.
func TestLongPollsWakeWhenTheEdgesChange(t *testing.T) {
	ctx := context.Background()
	hb := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	var (
		mu      sync.Mutex
		back    bool                  // edge-a is healthy again
		listed  int                   // calls of Edges
		changed = make(chan struct{}) // closed when back turns true
	)
	admin, _, srv := newPinnedAPIWith(t, func(o *api.Options) {
		o.Edges = func(context.Context) ([]model.Edge, error) {
			mu.Lock()
			defer mu.Unlock()
			listed++
			return []model.Edge{
				{Name: "edge-a", API: "https://192.0.2.2:7443", WireGuard: "192.0.2.2:51820", PublicKey: "ka",
					Heartbeat: hb("100.111.255.253"), Heartbeat6: hb("fd00:5359:6564:6765::3"), Healthy: back},
				{Name: "edge-b", API: "https://192.0.2.1:7443", WireGuard: "192.0.2.1:51820", PublicKey: "k",
					Heartbeat: hb("100.111.255.254"), Heartbeat6: hb("fd00:5359:6564:6765::2"), Healthy: true},
				{Name: "edge-c", API: "https://192.0.2.3:7443", WireGuard: "192.0.2.3:51820", PublicKey: "kc",
					Heartbeat: hb("100.111.255.252"), Heartbeat6: hb("fd00:5359:6564:6765::4"), Healthy: true},
			}, nil
		}
		o.EdgesChanged = func() <-chan struct{} {
			mu.Lock()
			defer mu.Unlock()
			return changed
		}
	})
	tun, err := admin.CreateTunnel(ctx, "fra")
	if err != nil {
		t.Fatal(err)
	}
	const polls = 5
	type answer struct {
		cfg     model.ConnectorConfig
		changed bool
		err     error
		at      time.Time
	}
	answers := make(chan answer, polls)
	for i := range polls {
		agent, _, err := client.NewConnector(tun.Token)
		if err != nil {
			t.Fatal(err)
		}
		enrolled, err := agent.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: wgKey(), Hostname: fmt.Sprintf("gw-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(enrolled.Config.Edge.Edges); n != 2 {
			t.Fatalf("before edge-a returns the configuration lists %d edges, want 2", n)
		}
		_, tag, _, err := agent.WatchConnectorConfig(ctx, enrolled.Connector.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			cfg, _, changed, err := agent.WatchConnectorConfig(ctx, enrolled.Connector.ID, tag, 30*time.Second)
			answers <- answer{cfg, changed, err, time.Now()}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); api.WaitingPolls(srv) < polls; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d polls wait, want %d", api.WaitingPolls(srv), polls)
		}
	}
	mu.Lock()
	back, listed = true, 0
	close(changed)
	changed = make(chan struct{})
	mu.Unlock()
	at := time.Now()
	for range polls {
		select {
		case a := <-answers:
			if a.err != nil || !a.changed {
				t.Fatalf("a poll answered changed=%v, %v", a.changed, a.err)
			}
			if n := len(a.cfg.Edge.Edges); n != 3 || a.cfg.Edge.Edges[0].Name != "edge-b" {
				t.Errorf("after edge-a returned a configuration lists %+v, want edge-b first, then edge-a and edge-c", a.cfg.Edge.Edges)
			}
			if d := a.at.Sub(at); d > time.Second {
				t.Errorf("a poll answered %v after the change, want well under a second", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the waiting polls did not answer within 5 s of the change (their wait is 30 s)")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if listed != 1 {
		t.Errorf("the edges were listed %d times for %d polls, want once", listed, polls)
	}
}
