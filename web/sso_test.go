package web_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/edge"
	"github.com/switchyard/switchyard/internal/testop"
)

// TestSignInWithSSO: an admin-group member signs in to the console through
// the identity provider; another user is refused.
func TestSignInWithSSO(t *testing.T) {
	ada := testop.User{Email: "ada@example.com", Password: "pw-ada", Groups: []string{"sy-admins"}}
	bob := testop.User{Email: "bob@example.org", Password: "pw-bob"}
	op, err := testop.Start(testop.Config{ClientID: "sy", ClientSecret: "sy-secret", Users: []testop.User{ada, bob}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	dir := t.TempDir()
	l := startEdge(t, edge.Config{DataDir: dir, OIDC: &edge.OIDCConfig{Issuer: op.Issuer(), ClientID: "sy", ClientSecret: "sy-secret", AdminGroup: "sy-admins"}})
	op.AllowRedirectURI(l.url + "/v1/login/callback")
	cfg, err := client.LoadConfig(filepath.Join(dir, client.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(cfg.CA))

	signIn := func(user testop.User) (int, string) {
		jar, _ := cookiejar.New(nil)
		br := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		get := func(u string) (*http.Response, string) {
			resp, err := br.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp, string(b)
		}
		resp, body := get(l.url + "/signin")
		if !strings.Contains(body, "Sign in with SSO") {
			t.Fatalf("sign-in page has no SSO button: %s", body)
		}
		resp, body = get(l.url + "/signin/sso")
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("/signin/sso: %s %s", resp.Status, body)
		}
		cb, err := op.SignIn(context.Background(), loc.String(), user)
		if err != nil {
			t.Fatal(err)
		}
		resp, body = get(cb) // the edge's callback, then the console's
		if loc, err = resp.Location(); err != nil {
			t.Fatalf("callback: %s %s", resp.Status, body)
		}
		resp, body = get(loc.String())
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, body
		}
		resp, body = get(l.url + "/devices")
		return resp.StatusCode, body
	}
	if code, body := signIn(ada); code != http.StatusOK || strings.Contains(body, `id="token"`) {
		t.Fatalf("admin: %d %s", code, body)
	}
	if code, body := signIn(bob); code != http.StatusForbidden || !strings.Contains(body, "not an admin") {
		t.Fatalf("non-admin: %d %s", code, body)
	}
}
