package web_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/edge"
)

// lab is a real edge (its own bbolt file, API and console on loopback) and
// a real headless Chromium driven over the DevTools protocol.
type lab struct {
	url   string // the console, https://127.0.0.1:PORT
	token string // the admin token
	dir   string // the edge's data dir
	admin *client.Client
	ctx   context.Context // the browser tab; every chromedp.Run uses it
}

// chromium finds Debian's chromium (.ci/run installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the console's browser tests need Chromium: apt-get install chromium (.ci/run installs it)")
	return ""
}

// startLab starts an edge and a browser, and stops both when t ends.
func startLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	l := startEdge(t, edge.Config{DataDir: dir})
	l.ctx = startBrowser(t)
	return l
}

// startEdge runs edge.Run with cfg on loopback (its API, console and
// WireGuard on free ports; no MASQUE; no log) until t ends, and returns a
// lab without a browser once the edge's API answers.
func startEdge(t *testing.T, cfg edge.Config) *lab {
	t.Helper()
	cfg.APIListen, cfg.WGListen, cfg.MASQUEListen = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.Log = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- edge.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("edge %s: %v", cfg.EdgeName, err)
		}
	})
	l := &lab{dir: cfg.DataDir}
	deadline := time.Now().Add(30 * time.Second)
	for l.admin == nil {
		select {
		case err := <-errc:
			errc <- err
			t.Fatalf("edge %s: %v", cfg.EdgeName, err)
		default:
		}
		c, err := client.LoadConfig(filepath.Join(cfg.DataDir, client.ConfigFile))
		if err == nil {
			if admin, err := client.New(c.API, c.Token, []byte(c.CA)); err == nil {
				if _, err := admin.ListVNets(ctx, model.VNetFilter{}); err == nil {
					l.admin, l.url, l.token = admin, strings.TrimSuffix(c.API, "/"), c.Token
				}
			}
		}
		if l.admin == nil && time.Now().After(deadline) {
			t.Fatalf("the API of edge %s did not answer within 30 s: %v", cfg.EdgeName, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l
}

// startBrowser starts a headless Chromium, stopped when t ends, and returns
// its tab.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,                               // CI runs as root, where Chromium's sandbox cannot start
		chromedp.Flag("ignore-certificate-errors", true), // the edge's own CA; the test checks no certificate
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel() })
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	return bctx
}

// run runs browser actions, bounded in time, failing t on error.
func (l *lab) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(l.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		l.shot(t, "failed")
		l.dump(t)
		t.Fatalf("%s: %v", what, err)
	}
}

// shot saves a screenshot of the page as name.png in the test's artifact
// directory (kept with go test -artifacts; make test keeps them under
// bin/test-output).
func (l *lab) shot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Errorf("save screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", p)
}

// dump logs the address and HTML of the page the browser shows.
func (l *lab) dump(t *testing.T) {
	ctx, cancel := context.WithTimeout(l.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	t.Logf("the browser shows %s:\n%s %v", loc, html, err)
}

// signIn signs the browser in with the admin token.
func (l *lab) signIn(t *testing.T) {
	t.Helper()
	l.run(t, "sign in",
		chromedp.Navigate(l.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), l.token),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`#tunnels-up`)),
	)
}

// get runs one browser action that returns a value, bounded in time.
func get[T any](t *testing.T, l *lab, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(l.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		l.shot(t, "failed")
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// text returns the visible text of the first element the CSS selector sel matches.
func (l *lab) text(t *testing.T, sel string) string {
	t.Helper()
	return get(t, l, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// location is the address of the page the browser shows.
func (l *lab) location(t *testing.T) string {
	t.Helper()
	return get(t, l, "read the location", chromedp.Location())
}
