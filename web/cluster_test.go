package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/control/cluster"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/edge"
	"github.com/switchyard/switchyard/internal/etcdtest"
)

// clusterLab is two edges on one embedded etcd, and a browser on edge 2's
// console; edge1 is edge 1 without a browser (its admin client).
type clusterLab struct {
	*lab
	edge1 *lab
}

// startClusterLab starts a one-member etcd and two edges on it, edge-1
// first (it creates the cluster's secrets, the admin token among them), and
// a browser for edge-2's console; all stop when t ends.
func startClusterLab(t *testing.T) *clusterLab {
	t.Helper()
	etcd := etcdtest.Start(t)
	key, err := cluster.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string) *lab {
		return startEdge(t, edge.Config{DataDir: t.TempDir(), EdgeName: name, Version: "test",
			Etcd: &edge.EtcdConfig{Endpoints: []string{etcd}, ClusterKey: key}})
	}
	l := &clusterLab{edge1: start("edge-1")}
	l.lab = start("edge-2")
	if l.token != l.edge1.token {
		t.Fatalf("the two edges of one cluster have different admin tokens")
	}
	if l.url == l.edge1.url {
		t.Fatalf("both edges serve at %s", l.url)
	}
	l.ctx = startBrowser(t)
	return l
}

// within polls cond every 10 ms until it holds and fails t after d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestClusterConsole changes the cluster through edge 1's API and sees every
// change on edge 2's console; a route added on edge 2's console is on edge
// 1's API.
func TestClusterConsole(t *testing.T) {
	l := startClusterLab(t)
	e1 := l.edge1
	e1.mustVNet(t, "blue")
	e1.mustTunnel(t, "blue-gw")
	e1.mustTunnel(t, "hq-gw")
	e1.mustRoute(t, "10.1.0.0/16", "blue-gw", "blue", "blue office")
	e1.mustRoute(t, "192.0.2.0/24", "hq-gw", "", "hq lan")
	if _, err := e1.admin.CreatePolicy(context.Background(), model.NewPolicy{Name: "no-ssh", Action: model.ActionBlock,
		Match: model.Expr{Selector: model.SelDstPort, Operator: model.OpIs, Values: []string{"22"}}}); err != nil {
		t.Fatalf("create the policy through edge 1: %v", err)
	}
	// The store's change feed carries the writes in order: once edge 2 has
	// the policy, it has the rest.
	took := within(t, 5*time.Second, "edge 2 has edge 1's policy", func() bool {
		ps, err := l.admin.ListPolicies(context.Background())
		return err == nil && len(ps) == 1
	})
	t.Logf("edge 2 had edge 1's changes %v after the last one", took)

	l.signIn(t)
	// Overview: both edges, healthy; the two tunnels down.
	rows := get(t, l.lab, "read the edges", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#edges tbody tr")).map(r => r.cells[0].textContent.trim() + " " + r.cells[5].textContent.trim()).sort()`))
	if got, want := strings.Join(rows, ", "), "edge-1 healthy, edge-2 healthy"; got != want {
		t.Errorf("edge 2's overview lists the edges %q, want %q", got, want)
	}
	if got := l.text(t, "#tunnels-down"); got != "2" {
		t.Errorf("edge 2's overview: %s tunnels down, want 2", got)
	}
	if got := l.text(t, ".edge-name"); got != "edge-2" {
		t.Errorf("the console says it is served by %q, want edge-2", got)
	}
	l.shot(t, "overview")

	// Routes: the map has the vnet, both tunnels and both routes.
	l.run(t, "open the Routes page", chromedp.Navigate(l.url+"/routes"), chromedp.WaitVisible(chromedp.CSS(`#route-map`)))
	svg := get(t, l.lab, "read the map", chromedp.OuterHTML(chromedp.CSS(`#route-map`)))
	for _, s := range []string{">blue<", ">blue-gw<", ">hq-gw<", ">10.1.0.0/16<", ">192.0.2.0/24<", "blue office"} {
		if !strings.Contains(svg, s) {
			t.Errorf("edge 2's map lacks %s:\n%s", s, svg)
		}
	}
	l.shot(t, "routes")

	// Tunnels and policies.
	l.run(t, "open the Tunnels page", chromedp.Navigate(l.url+"/tunnels"), chromedp.WaitVisible(chromedp.CSS(`#tunnels`)))
	if got := l.text(t, "#tunnels tbody"); !strings.Contains(got, "blue-gw") || !strings.Contains(got, "hq-gw") {
		t.Errorf("edge 2's tunnels page shows %q, want blue-gw and hq-gw", got)
	}
	l.shot(t, "tunnels")
	l.run(t, "open the Policies page", chromedp.Navigate(l.url+"/policies"), chromedp.WaitVisible(chromedp.CSS(`#policies`)))
	if got := l.text(t, "#policies tbody"); !strings.Contains(got, "no-ssh") || !strings.Contains(got, "block") {
		t.Errorf("edge 2's policies page shows %q, want no-ssh, block", got)
	}
	l.shot(t, "policies")

	// A route added on edge 2's console is on edge 1's API.
	l.run(t, "open the Routes page", chromedp.Navigate(l.url+"/routes"), chromedp.WaitVisible(chromedp.CSS(`#add-route`)),
		chromedp.SetValue(chromedp.CSS(`#add-vnet`), "blue"))
	l.addRoute(t, "10.2.0.0/16", "blue-gw", "added on edge 2")
	l.waitFor(t, "the added route's notice", `(document.querySelector("#route-notice")||{}).textContent?.includes("10.2.0.0/16")`)
	var got []model.Route
	took = within(t, 5*time.Second, "edge 1 has the route added on edge 2's console", func() bool {
		got = e1.routesTo(t, "10.2.0.0/16")
		return len(got) == 1
	})
	if got[0].VNetName != "blue" || got[0].TunnelName != "blue-gw" || got[0].Comment != "added on edge 2" {
		t.Errorf("edge 1 has %+v, want 10.2.0.0/16 via blue-gw in blue", got[0])
	}
	t.Logf("edge 1 had the console's route %v after edge 2 acknowledged it", took)
	l.shot(t, "added-on-edge-2")
}
