package web_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/routing/host/hosttest"
)

// runConnector runs a real connector of the tunnel whose token is token in
// process (a channel TUN, a fake host, loopback UDP), at priority, until t ends.
func runConnector(t *testing.T, token string, priority uint8) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tun := tuntest.NewChannelTUN()
	h := hosttest.New()
	h.AddLink("sy0", 7)
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-tun.Inbound: // what the edge sends the site: dropped
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		done <- agent.RunConnector(ctx, agent.ConnectorConfig{Token: token, StateDir: filepath.Join(t.TempDir(), "state"),
			TunName: "sy0", Priority: priority, Seams: agent.Seams{TUN: tun.TUN(), Host: h, Bind: conn.NewDefaultBind()}})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				t.Errorf("connector: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the connector did not stop within 10 s")
		}
	})
}

// TestTunnelReplicasLive opens the tunnels page, then starts two real
// connectors of the tunnel: the page shows both replicas without a reload,
// the priority 200 one active, over WireGuard, with a recent heartbeat; a
// fail over in the browser makes the other one active, in the page and in
// the API.
func TestTunnelReplicasLive(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	created, err := l.admin.CreateTunnel(ctx, "site-a")
	if err != nil {
		t.Fatal(err)
	}
	l.signIn(t)
	l.run(t, "open tunnels", chromedp.Navigate(l.url+"/tunnels"), chromedp.WaitVisible(chromedp.CSS(`#tunnels tr[data-tunnel="site-a"]`)))
	runConnector(t, created.Token, 200)
	runConnector(t, created.Token, 100)
	rows := `document.querySelectorAll('#replicas tbody tr[data-replica]').length`
	get(t, l, "both replicas appear without a reload", chromedp.Poll[bool](rows+` === 2`, chromedp.WithPollingTimeout(15*time.Second)))
	active := `#replicas tr[data-state="active"]`
	if got := l.text(t, active+` td.priority`); got != "200" {
		t.Fatalf("the active replica has priority %q, want 200", got)
	}
	if got := l.text(t, active+` td.transport`); got != "wireguard" {
		t.Fatalf("the active replica's transport shows %q", got)
	}
	if got := l.text(t, active+` td.heartbeat`); !strings.HasSuffix(got, " s ago") {
		t.Fatalf("the active replica's heartbeat shows %q, want seconds ago", got)
	}
	if got := l.text(t, `#tunnels tr[data-tunnel="site-a"] td:nth-child(2)`); got != "up" {
		t.Fatalf("the tunnel shows %q, want up", got)
	}
	l.shot(t, "replicas")

	l.run(t, "fail over", chromedp.Click(chromedp.CSS(`#tunnels tr[data-tunnel="site-a"] button.failover`)))
	get(t, l, "the other replica becomes active", chromedp.Poll[bool](`(document.querySelector('#replicas tr[data-state="active"] td.priority')||{}).textContent === "100"`,
		chromedp.WithPollingTimeout(10*time.Second)))
	l.shot(t, "replicas-failed-over")
	tun, err := l.admin.GetTunnel(ctx, "site-a")
	if err != nil || len(tun.Connections) != 2 || tun.Connections[0].State != model.ReplicaActive || tun.Connections[0].Priority != 100 {
		t.Fatalf("after the fail over the API says %+v, %v; want the priority 100 replica active", tun.Connections, err)
	}
}
