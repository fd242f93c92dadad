package web_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
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

// waitFor waits until the JavaScript expression js is true in the page.
func (l *lab) waitFor(t *testing.T, what, js string) {
	t.Helper()
	get(t, l, "wait for "+what, chromedp.Poll[bool](js))
}

// mustVNet, mustTunnel and mustRoute set the edge up through its API.
func (l *lab) mustVNet(t *testing.T, name string) {
	t.Helper()
	if _, err := l.admin.CreateVNet(context.Background(), model.NewVNet{Name: name}); err != nil {
		t.Fatalf("create vnet %s: %v", name, err)
	}
}

func (l *lab) mustTunnel(t *testing.T, name string) string {
	t.Helper()
	ct, err := l.admin.CreateTunnel(context.Background(), name)
	if err != nil {
		t.Fatalf("create tunnel %s: %v", name, err)
	}
	return ct.Token
}

// connect runs a connector of the tunnel whose token is given, in process
// (tuntest's TUN, the host fake, loopback UDP), until t ends, and waits
// until the edge lists its connection.
func (l *lab) connect(t *testing.T, tunnel, token, hostname string) {
	t.Helper()
	tn := tuntest.NewChannelTUN()
	fake := hosttest.New()
	fake.AddLink("sy0", 7)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-tn.Inbound: // what the edge sends the site: dropped
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		done <- agent.RunConnector(ctx, agent.ConnectorConfig{Token: token, StateDir: filepath.Join(t.TempDir(), hostname),
			TunName: "sy0", Log: slog.New(slog.DiscardHandler),
			Seams: agent.Seams{TUN: tn.TUN(), Host: fake, Bind: conn.NewDefaultBind()}})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("the connector of %s did not stop within 10 s", tunnel)
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		tt, err := l.admin.GetTunnel(context.Background(), tunnel)
		if err == nil && len(tt.Connections) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connector of %s did not connect within 15 s (%v)", tunnel, err)
		}
	}
}

func (l *lab) mustRoute(t *testing.T, cidr, tunnel, vnet, comment string) {
	t.Helper()
	if _, err := l.admin.AddRoute(context.Background(), model.NewRoute{Network: netip.MustParsePrefix(cidr), Tunnel: tunnel, VNet: vnet, Comment: comment}); err != nil {
		t.Fatalf("add route %s: %v", cidr, err)
	}
}

// routesTo lists the routes for cidr, through the API.
func (l *lab) routesTo(t *testing.T, cidr string) []model.Route {
	t.Helper()
	p := netip.MustParsePrefix(cidr)
	rs, err := l.admin.ListRoutes(context.Background(), model.RouteFilter{SubsetOf: &p, SupersetOf: &p})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// addRoute fills in and posts the Routes page's add form.
func (l *lab) addRoute(t *testing.T, cidr, tunnel, comment string) {
	t.Helper()
	l.run(t, "add route "+cidr,
		chromedp.SetValue(chromedp.CSS(`#add-network`), cidr),
		chromedp.SetValue(chromedp.CSS(`#add-tunnel`), tunnel),
		chromedp.SetValue(chromedp.CSS(`#add-comment`), comment),
		chromedp.Click(chromedp.CSS(`#add-submit`)),
	)
}

func TestRoutesAddDuplicateDelete(t *testing.T) {
	l := startLab(t)
	l.mustTunnel(t, "site-a")
	l.signIn(t)
	l.run(t, "open the Routes page", chromedp.Navigate(l.url+"/routes"), chromedp.WaitVisible(chromedp.CSS(`#add-route`)))

	l.addRoute(t, "192.0.2.0/24", "site-a", "lab printers")
	l.waitFor(t, "the added route's notice", `(document.querySelector("#route-notice")||{}).textContent?.includes("192.0.2.0/24")`)
	svg := get(t, l, "read the map", chromedp.OuterHTML(chromedp.CSS(`#route-map`)))
	if !strings.Contains(svg, ">192.0.2.0/24<") || !strings.Contains(svg, ">site-a<") || !strings.Contains(svg, "lab printers") {
		t.Fatalf("the map does not show the new route 192.0.2.0/24 via site-a:\n%s", svg)
	}
	if got := l.text(t, "#routes-table tbody"); !strings.Contains(got, "192.0.2.0/24") {
		t.Fatalf("the routes table shows %q, not the new route", got)
	}
	l.shot(t, "added")

	// The same route again: the API's 1014, inline, and still one route.
	l.addRoute(t, "192.0.2.0/24", "site-a", "again")
	l.waitFor(t, "the duplicate's error", `(document.querySelector("#errors .error")||{}).textContent?.includes("1014")`)
	if got := l.text(t, "#errors .error"); !strings.Contains(got, "(error 1014)") {
		t.Fatalf("the duplicate showed %q", got)
	}
	l.shot(t, "duplicate")
	if rs := l.routesTo(t, "192.0.2.0/24"); len(rs) != 1 || rs[0].Comment != "lab printers" {
		t.Fatalf("after the duplicate, the API has %+v, want the one first route", rs)
	}
	n := get(t, l, "count the map's routes", chromedp.Evaluate[int](`document.querySelectorAll("#route-map .route").length`))
	if n != 1 {
		t.Fatalf("the map shows %d routes after the refused duplicate, want 1", n)
	}

	// A CIDR with host bits set: the API's message, and no route.
	l.addRoute(t, "198.51.100.7/24", "site-a", "a typo")
	l.waitFor(t, "the non-canonical CIDR's error", `(document.querySelector("#errors .error")||{}).textContent?.includes("host bits")`)
	if got := l.text(t, "#errors .error"); !strings.Contains(got, "198.51.100.0/24") {
		t.Fatalf("the non-canonical CIDR showed %q, want the network it meant", got)
	}
	l.shot(t, "non-canonical")
	if rs := l.routesTo(t, "198.51.100.0/24"); len(rs) != 0 {
		t.Fatalf("a non-canonical CIDR added %+v", rs)
	}

	// Delete asks first: the first click reveals the confirm button and
	// deletes nothing; Cancel takes it back.
	sure := `#routes-table form.delete-route .sure`
	visible := func(sel string) bool {
		return get(t, l, "is "+sel+" shown", chromedp.Evaluate[bool](`(e => !!e && e.offsetParent !== null)(document.querySelector(`+"`"+sel+"`"+`))`))
	}
	if visible(sure) {
		t.Fatalf("the confirm button shows before Delete is clicked")
	}
	l.run(t, "click Delete", chromedp.Click(chromedp.CSS(`#routes-table form.delete-route .ask`)), chromedp.WaitVisible(chromedp.CSS(sure)))
	l.shot(t, "delete-asks")
	time.Sleep(500 * time.Millisecond) // time for a request the first click should not have sent
	if rs := l.routesTo(t, "192.0.2.0/24"); len(rs) != 1 {
		t.Fatalf("the first click on Delete alone deleted the route: the API has %+v", rs)
	}
	if got := l.text(t, sure); !strings.Contains(got, "192.0.2.0/24") {
		t.Errorf("the confirm button says %q, want the route's network", got)
	}
	l.run(t, "cancel", chromedp.Click(chromedp.CSS(`#routes-table form.delete-route .cancel`)), chromedp.WaitNotVisible(chromedp.CSS(sure)))
	if !visible(`#routes-table form.delete-route .ask`) {
		t.Fatalf("after Cancel the Delete button is not back")
	}

	// Delete, confirmed: gone from the API, the map and the table; the error box cleared.
	l.run(t, "delete the route", chromedp.Click(chromedp.CSS(`#routes-table form.delete-route .ask`)),
		chromedp.WaitVisible(chromedp.CSS(sure)), chromedp.Click(chromedp.CSS(sure)))
	l.waitFor(t, "the deletion's notice", `(document.querySelector("#route-notice")||{}).textContent?.includes("Deleted")`)
	if rs := l.routesTo(t, "192.0.2.0/24"); len(rs) != 0 {
		t.Fatalf("after delete the API still has %+v", rs)
	}
	if svg := get(t, l, "read the map", chromedp.OuterHTML(chromedp.CSS(`#route-map`))); strings.Contains(svg, "192.0.2.0/24") {
		t.Fatalf("the map still shows the deleted route")
	}
	if n := get(t, l, "count errors", chromedp.Evaluate[int](`document.querySelectorAll("#errors .error").length`)); n != 0 {
		t.Errorf("the old error stays after a success")
	}
	l.shot(t, "deleted")
}

// overlapLab sets up two vnets with 10.1.0.0/16 in both, through different
// tunnels, and a less specific 10.0.0.0/8 in blue.
func overlapLab(t *testing.T) *lab {
	l := startLab(t)
	for _, v := range []string{"blue", "green"} {
		l.mustVNet(t, v)
	}
	for _, tn := range []string{"blue-gw", "blue-core", "green-gw"} {
		l.mustTunnel(t, tn)
	}
	l.mustRoute(t, "10.1.0.0/16", "blue-gw", "blue", "blue office")
	l.mustRoute(t, "10.0.0.0/8", "blue-core", "blue", "blue backbone")
	l.mustRoute(t, "10.1.0.0/16", "green-gw", "green", "green office")
	return l
}

func TestRoutesLookupReachOverlaps(t *testing.T) {
	l := overlapLab(t)
	l.signIn(t)
	l.run(t, "open the Routes page", chromedp.Navigate(l.url+"/routes"), chromedp.WaitVisible(chromedp.CSS(`#lookup-form`)))

	// Every vnet: each answers with its own tunnel; blue's /16 beat its /8.
	l.run(t, "look 10.1.2.3 up in every vnet",
		chromedp.SetValue(chromedp.CSS(`#lookup-ip`), "10.1.2.3"),
		chromedp.Click(chromedp.CSS(`#lookup-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#lookup-result .lookup[data-vnet="green"]`)),
	)
	for vnet, want := range map[string]string{"blue": "blue-gw", "green": "green-gw"} {
		if got := l.text(t, `#lookup-result .lookup[data-vnet="`+vnet+`"] .tunnel-name`); got != want {
			t.Errorf("10.1.2.3 in %s: tunnel %q, want %q", vnet, got, want)
		}
	}
	if got := l.text(t, `#lookup-result .lookup[data-vnet="blue"] .beaten`); !strings.Contains(got, "10.0.0.0/8") || !strings.Contains(got, "blue-core") {
		t.Errorf("in blue the /16 beat %q, want 10.0.0.0/8 via blue-core", got)
	}
	if n := get(t, l, "count green's beaten", chromedp.Evaluate[int](`document.querySelectorAll('#lookup-result .lookup[data-vnet="green"] .beaten li').length`)); n != 0 {
		t.Errorf("in green the /16 beat %d routes, want none", n)
	}
	if got := l.text(t, `#lookup-result .lookup[data-vnet="default"] .none`); !strings.Contains(got, "No route matches") {
		t.Errorf("10.1.2.3 in the default vnet: %q, want a clear no", got)
	}
	if n := get(t, l, "count the marked routes", chromedp.Evaluate[int](`document.querySelectorAll("#route-map .route.hit").length`)); n != 2 {
		t.Errorf("the map marks %d winning routes, want 2 (blue's and green's /16)", n)
	}
	l.shot(t, "lookup-every-vnet")

	// One vnet, outside the /16: the /8 wins, beating nothing.
	l.run(t, "look 10.2.0.1 up in blue",
		chromedp.SetValue(chromedp.CSS(`#lookup-ip`), "10.2.0.1"),
		chromedp.SetValue(chromedp.CSS(`#lookup-vnet`), "blue"),
		chromedp.Click(chromedp.CSS(`#lookup-form button`)),
	)
	l.waitFor(t, "the answer for 10.2.0.1", `document.querySelectorAll("#lookup-result .lookup").length == 1 && document.querySelector("#lookup-result .winner")?.textContent.includes("10.2.0.1")`)
	if got := l.text(t, `#lookup-result .lookup[data-vnet="blue"] .tunnel-name`); got != "blue-core" {
		t.Errorf("10.2.0.1 in blue: tunnel %q, want blue-core", got)
	}

	// How is 10.1.0.5/16 reached: equal in both vnets, and blue's /8 contains it.
	l.run(t, "how is 10.1.0.5/16 reached",
		chromedp.SetValue(chromedp.CSS(`#reach-cidr`), "10.1.0.5/16"),
		chromedp.Click(chromedp.CSS(`#reach-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#reach-table`)),
	)
	rows := get(t, l, "read the reach table", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#reach-table tbody tr")).map(r => Array.from(r.cells).slice(0,3).map(c => c.textContent.trim().replace(/\s+/g," ")).join(" | "))`))
	want := []string{
		"blue | 10.0.0.0/8 | superset contains it",
		"blue | 10.1.0.0/16 | equal · carries 10.1.0.0/16",
		"green | 10.1.0.0/16 | equal · carries 10.1.0.0/16",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("how 10.1.0.5/16 is reached:\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}

	// The overlaps: 10.1.0.0/16 in blue and green (and blue's /8 over green's /16).
	ov := l.text(t, "#overlaps tbody")
	for _, s := range []string{"blue", "green", "10.1.0.0/16", "10.0.0.0/8"} {
		if !strings.Contains(ov, s) {
			t.Errorf("the overlaps view %q lacks %s", ov, s)
		}
	}
	l.shot(t, "reach-and-overlaps")
}

// TestRoutesScreenshot draws a small, realistic setup for README: with
// SWITCHYARD_DOCS=1 it writes docs/console-routes.png.
func TestRoutesScreenshot(t *testing.T) {
	l := startLab(t)
	for _, v := range []string{"prod", "staging"} {
		l.mustVNet(t, v)
	}
	tokens := map[string]string{}
	for _, tn := range []string{"hq-gw", "dc1-gw", "dc2-gw", "stage-gw", "lab-gw"} {
		tokens[tn] = l.mustTunnel(t, tn)
	}
	for _, tn := range []string{"hq-gw", "dc1-gw", "stage-gw"} { // lab-gw and dc2-gw stay down
		l.connect(t, tn, tokens[tn], tn+"-host")
	}
	for _, r := range [][4]string{
		{"192.168.1.0/24", "hq-gw", "", "HQ office LAN"},
		{"192.168.2.0/24", "hq-gw", "", "HQ phones (SIP)"},
		{"172.16.0.0/12", "lab-gw", "", "lab, everything else"},
		{"10.10.0.0/16", "dc1-gw", "prod", "DC1 servers"},
		{"10.10.8.0/21", "dc1-gw", "prod", "DC1 databases"},
		{"10.20.0.0/16", "dc2-gw", "prod", "DC2 servers"},
		{"10.0.0.0/8", "dc2-gw", "prod", "prod catch-all"},
		{"10.10.0.0/16", "stage-gw", "staging", "staging copy of DC1"},
		{"10.30.0.0/16", "stage-gw", "staging", "CI runners"},
		{"192.168.2.0/24", "stage-gw", "staging", "test phones"},
	} {
		l.mustRoute(t, r[0], r[1], r[2], r[3])
	}
	l.signIn(t)
	l.run(t, "open the Routes page and ask",
		chromedp.Navigate(l.url+"/routes"),
		chromedp.SetValue(chromedp.CSS(`#lookup-ip`), "10.10.9.20"),
		chromedp.Click(chromedp.CSS(`#lookup-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#lookup-result .lookup[data-vnet="staging"]`)),
		chromedp.SetValue(chromedp.CSS(`#reach-cidr`), "192.168.2.1/28"),
		chromedp.Click(chromedp.CSS(`#reach-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#reach-table`)),
	)
	if got := l.text(t, `#lookup-result .lookup[data-vnet="prod"] .winner`); !strings.Contains(got, "10.10.8.0/21") || !strings.Contains(got, "up") {
		t.Errorf("10.10.9.20 in prod: %q, want the /21 via dc1-gw, up", got)
	}
	// Each tunnel's node says whether it is up: it is when its connector is connected.
	states := get(t, l, "read the tunnels' states", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#route-map .tunnel")).map(g => g.querySelector("text").textContent + " " + (g.classList.contains("up") ? "up" : "down")).sort()`))
	if got, want := strings.Join(states, ", "), "dc1-gw up, dc2-gw down, hq-gw up, lab-gw down, stage-gw up"; got != want {
		t.Errorf("the map's tunnels: %s, want %s", got, want)
	}
	l.shot(t, "routes")
	if os.Getenv("SWITCHYARD_DOCS") == "" {
		return
	}
	png, err := chromedp.Run(l.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", "console-routes.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
