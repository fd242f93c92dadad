package api_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"testing"

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
