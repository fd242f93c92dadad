package web_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestPoliciesPage adds two policies in the browser, tests a flow against
// them, moves the second above the first and sees the verdict change, sees
// a malformed condition refused inline, and changes the default action.
func TestPoliciesPage(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	if _, err := l.admin.CreateTunnel(ctx, "site-c"); err != nil {
		t.Fatal(err)
	}
	l.signIn(t)
	add := func(name, action, conds string) {
		t.Helper()
		l.run(t, "add policy "+name,
			chromedp.SetValue(chromedp.CSS(`#new-name`), name),
			chromedp.SetValue(chromedp.CSS(`#new-action`), action),
			chromedp.SetValue(chromedp.CSS(`#new-conditions`), conds),
			chromedp.Click(chromedp.CSS(`#add-policy button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`#policies tr[data-name="`+name+`"]`)),
		)
	}
	test := func(source, src, dst, proto, port string) (action, policy string) {
		t.Helper()
		get(t, l, "clear the verdict", chromedp.Evaluate[string](`document.getElementById("verdict").innerHTML = ""`))
		l.run(t, "test a flow",
			chromedp.SetValue(chromedp.CSS(`#test-source`), source),
			chromedp.SetValue(chromedp.CSS(`#test-src`), src),
			chromedp.SetValue(chromedp.CSS(`#test-dst`), dst),
			chromedp.SetValue(chromedp.CSS(`#test-protocol`), proto),
			chromedp.SetValue(chromedp.CSS(`#test-port`), port),
			chromedp.Click(chromedp.CSS(`#test-flow button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`#verdict-action`)),
		)
		return strings.ToLower(l.text(t, `#verdict-action`)), l.text(t, `#verdict-policy`)
	}

	l.run(t, "open the policies page", chromedp.Navigate(l.url+"/policies"), chromedp.WaitVisible(chromedp.CSS(`#add-policy`)))
	tunnel := get(t, l, "the tunnel option", chromedp.Evaluate[string](
		`[...document.querySelectorAll("#test-source option")].find(o => o.textContent.includes("site-c")).value`))
	add("web", "allow", "dst_ip in 192.0.2.0/24\ndst_port is 443")
	add("no-site-c", "block", "tunnel is site-c")
	if got := l.text(t, `#policies tbody tr:first-child .name`); got != "web" {
		t.Fatalf("first policy %q, want web", got)
	}
	if a, p := test(tunnel, "198.51.100.7", "192.0.2.10", "tcp", "443"); a != "allow" || !strings.Contains(p, "web") {
		t.Fatalf("site-c to 192.0.2.10:443: %q %q, want allow by web", a, p)
	}
	l.shot(t, "policies-test-allow")

	l.run(t, "move no-site-c up",
		chromedp.Click(chromedp.CSS(`#policies tr[data-name="no-site-c"] .move-up`)),
	)
	get(t, l, "see no-site-c first", chromedp.Poll[bool](`document.querySelector("#policies tbody tr:first-child").dataset.name === "no-site-c"`))
	if a, p := test(tunnel, "198.51.100.7", "192.0.2.10", "tcp", "443"); a != "block" || !strings.Contains(p, "no-site-c") {
		t.Fatalf("after the move: %q %q, want block by no-site-c", a, p)
	}
	if m := l.text(t, `#verdict-match`); m != "tunnel is site-c" {
		t.Fatalf("the matching rule's condition shows as %q", m)
	}
	l.shot(t, "policies-moved-test-block")

	// Anyone's DNS matches no rule: the default decides, then the new default.
	if a, p := test("", "198.51.100.7", "203.0.113.53", "udp", "53"); a != "allow" || !strings.Contains(p, "default") {
		t.Fatalf("udp 53 under the default: %q %q, want allow by the default", a, p)
	}
	l.run(t, "set the default to block",
		chromedp.SetValue(chromedp.CSS(`#default-action`), "block"),
		chromedp.Click(chromedp.CSS(`#default-form button`)),
	)
	get(t, l, "see the default block", chromedp.Poll[bool](`document.getElementById("default-now").textContent === "block"`))
	if d, err := l.admin.PolicyDefault(ctx); err != nil || d.Action != "block" {
		t.Fatalf("the API's default after the change: %+v, %v", d, err)
	}
	if a, p := test("", "198.51.100.7", "203.0.113.53", "udp", "53"); a != "block" || !strings.Contains(p, "default") {
		t.Fatalf("udp 53 under default block: %q %q", a, p)
	}

	// A malformed CIDR is refused inline and nothing is added.
	l.run(t, "add a malformed policy",
		chromedp.SetValue(chromedp.CSS(`#new-name`), "bad"),
		chromedp.SetValue(chromedp.CSS(`#new-conditions`), "dst_ip is 192.0.2.1/33"),
		chromedp.Click(chromedp.CSS(`#add-policy button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#errors .error`)),
	)
	if msg := l.text(t, `#errors .error`); !strings.Contains(msg, "192.0.2.1/33") {
		t.Fatalf("error shown: %q", msg)
	}
	if ps, err := l.admin.ListPolicies(ctx); err != nil || len(ps) != 2 || ps[0].Name != "no-site-c" {
		t.Fatalf("policies after all: %+v, %v", ps, err)
	}
	l.shot(t, "policies")
}
