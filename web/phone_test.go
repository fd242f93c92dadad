package web_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/control/model"
)

// overflowJS lists what sticks out of the viewport to the right, but for
// what lies inside an element that scrolls (or clips) horizontally, such as
// a wide table's wrapper: each as tag#id.class and its right edge.
const overflowJS = `(() => {
  const w = 390, out = [];
  // An ancestor scrolls e only from e's containing block up: an absolutely
  // positioned e escapes the wrappers below its positioned ancestor.
  const clipped = e => { let abs = getComputedStyle(e).position === "absolute";
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const st = getComputedStyle(p);
      if (abs) { if (st.position === "static") continue; abs = false; }
      if ((st.overflowX === "auto" || st.overflowX === "scroll") && p.scrollWidth > p.clientWidth) return true; } return false; };
  for (const e of document.body.querySelectorAll("*")) {
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > w + 1 && !clipped(e)) {
      out.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.classList.length ? "." + [...e.classList].join(".") : "") + " right " + Math.round(r.right));
    }
  }
  return out.slice(0, 12);
})()`

// navJS lists the main navigation's links (and Sign out) that cannot be
// reached: not shown, or outside the viewport's width.
const navJS = `(() => {
  const bad = [];
  for (const e of document.querySelectorAll("header.top nav a, form.signout button")) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || r.left < 0 || r.right > 391) bad.push(e.textContent.trim() + " at " + Math.round(r.left) + "–" + Math.round(r.right));
  }
  return bad;
})()`

// TestPhone opens every page in a phone's viewport (390×844, mobile) with
// realistic data: the document is no wider than the screen (a wide table
// scrolls inside its wrapper) and the navigation and Sign out are on it.
func TestPhone(t *testing.T) {
	l := startLab(t)
	l.mustVNet(t, "production-eu-west")
	token := l.mustTunnel(t, "datacenter-frankfurt-gw")
	l.mustTunnel(t, "branch-office-lisbon")
	l.mustRoute(t, "10.20.0.0/16", "datacenter-frankfurt-gw", "production-eu-west", "Frankfurt servers, racks A–F")
	l.mustRoute(t, "192.168.10.0/24", "branch-office-lisbon", "", "Lisbon office LAN and printers")
	l.mustRoute(t, "2001:db8:1234:5600::/56", "branch-office-lisbon", "", "Lisbon IPv6")
	if _, err := l.admin.CreatePolicy(context.Background(), model.NewPolicy{Name: "block-ssh-to-production", Action: model.ActionBlock,
		Match: model.Expr{And: []model.Expr{
			{Selector: model.SelDstIP, Operator: model.OpIn, Values: []string{"10.20.0.0/16", "198.51.100.0/24"}},
			{Selector: model.SelDstPort, Operator: model.OpIs, Values: []string{"22"}},
		}}}); err != nil {
		t.Fatalf("create a policy: %v", err)
	}
	l.connect(t, "datacenter-frankfurt-gw", token, "fra-gw-01.example.net")

	l.run(t, "emulate a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
	l.signIn(t)
	for _, p := range []struct{ path, name, ready string }{
		{"/", "overview", "#tunnels-up"},
		{"/routes", "routes", "#route-map"},
		{"/tunnels", "tunnels", "#tunnels"},
		{"/vnets", "vnets", "#add-vnet"},
		{"/devices", "devices", "main h1"},
		{"/split-tunnel", "split-tunnel", "main h1"},
		{"/policies", "policies", "#policies"},
		{"/flows", "flows", "main h1"},
	} {
		l.run(t, "open "+p.path, chromedp.Navigate(l.url+p.path), chromedp.WaitVisible(chromedp.CSS(p.ready)))
		l.shot(t, "phone-"+p.name)
		// On a mobile viewport, a page wider than the screen widens the
		// visual viewport (innerWidth) as Chrome zooms out to fit: compare
		// with the screen's 390 px.
		width := get(t, l, "measure "+p.path, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`))
		if width[1] != 390 {
			t.Fatalf("the layout viewport is %d px wide, want the phone's 390", width[1])
		}
		if width[0] > 391 || width[1] > 391 {
			over := get(t, l, "find what overflows", chromedp.Evaluate[[]string](overflowJS))
			t.Errorf("%s on a phone: the document is %d px wide, the screen %d; sticking out: %s", p.path, width[0], width[1], strings.Join(over, ", "))
		}
		if bad := get(t, l, "check the navigation", chromedp.Evaluate[[]string](navJS)); len(bad) > 0 {
			t.Errorf("%s on a phone: these links are off the screen: %s", p.path, strings.Join(bad, ", "))
		}
	}
}
