package web_test

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

func TestSignInAndOut(t *testing.T) {
	l := startLab(t)
	// Signed out, a page sends the browser to the sign-in form.
	l.run(t, "open a page signed out",
		chromedp.Navigate(l.url+"/routes"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
	)
	loc := l.location(t)
	if !strings.Contains(loc, "/signin?next=%2Froutes") {
		t.Fatalf("signed out, /routes led to %s, want the sign-in page", loc)
	}
	l.run(t, "a wrong token",
		chromedp.SendKeys(chromedp.CSS(`#token`), "not-the-token"),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`.error`)),
	)
	if got := l.text(t, ".error"); !strings.Contains(got, "not this edge's admin token") {
		t.Fatalf("a wrong token showed %q", got)
	}
	l.signIn(t)
	l.shot(t, "overview")
	if cookies := get(t, l, "read the page's cookies", chromedp.Evaluate[string](`document.cookie`)); cookies != "" {
		t.Fatalf("the page's script can read cookies %q: the session cookie must be HttpOnly", cookies)
	}
	l.run(t, "sign out",
		chromedp.Click(chromedp.CSS(`form.signout button`)),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.Navigate(l.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
	)
	if loc = l.location(t); !strings.Contains(loc, "/signin") {
		t.Fatalf("after signing out, / showed %s", loc)
	}
}

// TestRefusals checks, without a browser, what a signed-out or cross-site
// request gets: nothing changes, and the answer says why.
func TestRefusals(t *testing.T) {
	l := startLab(t)
	hc := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	do := func(method, path string, form url.Values, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, l.url+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	// Signed out: pages redirect, changes are refused.
	if r := do("GET", "/tunnels", nil, nil); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/signin") {
		t.Errorf("signed-out GET /tunnels: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if r := do("POST", "/routes", url.Values{"network": {"192.0.2.0/24"}}, nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed-out POST /routes: %d, want 401", r.StatusCode)
	}
	// A sign-in posted from another site is refused before the token is looked at.
	if r := do("POST", "/signin", url.Values{"token": {l.token}}, map[string]string{"Origin": "https://evil.example"}); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site sign-in: %d, want 403", r.StatusCode)
	}
	r := do("POST", "/signin", url.Values{"token": {l.token}, "next": {"//evil.example/"}}, nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("sign-in: %d to %q, want 303 to / (never to another site)", r.StatusCode, r.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, "__Host-") {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteStrictMode || session.Path != "/" {
		t.Fatalf("session cookie %+v: want __Host-, HttpOnly, Secure, SameSite=Strict, Path=/", session)
	}
	cookie := map[string]string{"Cookie": session.Name + "=" + session.Value}
	withCookie := func(extra map[string]string) map[string]string {
		m := map[string]string{"Cookie": cookie["Cookie"]}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	// Signed in, but a change without the CSRF token, or from another site
	// with it, is refused.
	if r := do("POST", "/signout", nil, cookie); r.StatusCode != http.StatusForbidden {
		t.Errorf("POST /signout without the CSRF token: %d, want 403", r.StatusCode)
	}
	if r := do("POST", "/signout", nil, withCookie(map[string]string{"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": "x"})); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST /signout: %d, want 403", r.StatusCode)
	}
	// The page is served with the strict policy, and the session still works.
	r = do("GET", "/", nil, cookie)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET / signed in: %d", r.StatusCode)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// The API is untouched: under /v1, a bearer token, never the cookie.
	if r := do("GET", "/v1/vnets", nil, cookie); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/vnets with the console's cookie and no token: %d, want 401", r.StatusCode)
	}
}
