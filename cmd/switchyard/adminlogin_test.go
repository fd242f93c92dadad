package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testop"
)

var (
	loginAdmin = testop.User{Email: "ada@example.com", Password: "pw-ada", Groups: []string{"staff", "sy-admins"}}
	loginUser  = testop.User{Email: "bob@example.org", Password: "pw-bob", Groups: []string{"staff"}}
)

// loginEdge starts a real OpenID provider and an edge that signs admins in
// with it, and returns the global flags that reach the edge without its
// admin token (an admin config that does not exist), the admin session
// file, and the provider.
func loginEdge(t *testing.T) (flags []string, session string, op *testop.Provider) {
	t.Helper()
	op, err := testop.Start(testop.Config{ClientID: "sy", ClientSecret: "sy-secret", Users: []testop.User{loginAdmin, loginUser}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	dir, tmp := t.TempDir(), t.TempDir()
	secret := filepath.Join(tmp, "secret")
	if err := os.WriteFile(secret, []byte("sy-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	edge := startEdge(t, dir, "--oidc-issuer", op.Issuer(), "--oidc-client-id", "sy", "--oidc-client-secret-file", secret, "--oidc-admin-group", "sy-admins")
	session = filepath.Join(tmp, "home", "switchyard", "admin-session.json")
	return []string{"--api", edge.api, "--ca", filepath.Join(dir, "ca.crt"), "--config", filepath.Join(tmp, "absent.json"), "--session", session}, session, op
}

// login runs switchyard login with args in this process; once it waits,
// act plays the user with what it printed (nil: nobody does). It returns
// login's error and output.
func login(t *testing.T, ctx context.Context, flags []string, act func(printed string), args ...string) (string, error) {
	t.Helper()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	full := append(append(append([]string{"switchyard"}, flags...), "login"), args...)
	go func() { done <- newApp(out, errOut).RunContext(ctx, full) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if printed := out.String(); strings.Contains(printed, "Waiting for the sign-in") {
			if act != nil {
				act(printed)
			}
			break
		}
		select {
		case err := <-done:
			return out.String(), err
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("login did not wait within 10s:\n%s%s", out, errOut)
		}
	}
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(20 * time.Second):
		t.Fatalf("login did not finish within 20s:\n%s", out)
		return "", nil
	}
}

var codeRE = regexp.MustCompile(`enter the code\n\n  (\S+)\n`)

// approve plays user on the device page with the code login printed.
func approve(t *testing.T, op *testop.Provider, user testop.User) func(string) {
	return func(printed string) {
		m := codeRE.FindStringSubmatch(printed)
		if m == nil {
			t.Errorf("login printed no code:\n%s", printed)
			return
		}
		if err := op.ApproveDevice(context.Background(), m[1], user); err != nil {
			t.Error(err)
		}
	}
}

// runBin runs the binary without the environment's credentials.
func runBin(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "SWITCHYARD_CONFIG=", "SWITCHYARD_TOKEN=", "SWITCHYARD_API=", "SWITCHYARD_SESSION=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestAdminLoginCLI: switchyard login signs an admin in by device code
// through a real provider; later commands use the session without the
// admin token, until it ends; a user outside the admin group is refused
// with the edge's message and nothing is kept.
func TestAdminLoginCLI(t *testing.T) {
	flags, session, op := loginEdge(t)
	ctx := context.Background()
	out, err := login(t, ctx, flags, approve(t, op, loginAdmin))
	if err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	t.Logf("switchyard login:\n%s", out)
	for _, want := range []string{"To sign in as an admin, open " + op.Issuer(), "Or open this URL, which carries the code:\n\n  " + op.Issuer(), "Signed in to https://127.0.0.1:", " as ada@example.com; the admin session lasts until "} {
		if !strings.Contains(out, want) {
			t.Errorf("login output lacks %q:\n%s", want, out)
		}
	}
	fi, err := os.Stat(session)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v, mode %v", err, fi.Mode())
	}
	if di, err := os.Stat(filepath.Dir(session)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("session directory: %v, mode %v", err, di.Mode())
	}

	// The session lists vnets: no admin token anywhere.
	if out, code := runBin(t, append(flags, "tunnel", "vnet", "list")...); code != 0 || !strings.Contains(out, "default") {
		t.Fatalf("vnet list with the admin session: exit %d\n%s", code, out)
	}
	// Without the session, the same command has no credentials.
	noSession := append(append([]string{}, flags[:len(flags)-1]...), session+".none")
	if out, code := runBin(t, append(noSession, "tunnel", "vnet", "list")...); code == 0 {
		t.Fatalf("vnet list without a session succeeded:\n%s", out)
	}

	// An ended session says so, and sends nothing.
	buf, _ := os.ReadFile(session)
	var s adminSessionFile
	if err := json.Unmarshal(buf, &s); err != nil || s.Token == "" || s.Email != loginAdmin.Email {
		t.Fatalf("session file: %v %s", err, buf)
	}
	s.ExpiresAt = time.Now().Add(-time.Minute).Truncate(time.Second)
	if err := saveSession(session, s); err != nil {
		t.Fatal(err)
	}
	want := "admin session of ada@example.com expired at " + s.ExpiresAt.Local().Format(time.RFC3339) + ": run switchyard login"
	if out, code := runBin(t, append(flags, "tunnel", "vnet", "list")...); code != 5 || !strings.Contains(out, want) {
		t.Fatalf("vnet list with an ended session: exit %d, want 5 and %q\n%s", code, want, out)
	}

	// logout ends the session on the edge and forgets it.
	s.ExpiresAt = time.Now().Add(time.Hour)
	if err := saveSession(session, s); err != nil {
		t.Fatal(err)
	}
	if out, code := runBin(t, append(flags, "logout")...); code != 0 || !strings.Contains(out, "Signed out: ended and forgot the admin session of ada@example.com") {
		t.Fatalf("logout: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(session); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("session file after logout: %v", err)
	}
	if err := saveSession(session, s); err != nil { // the token, kept elsewhere
		t.Fatal(err)
	}
	if out, code := runBin(t, append(flags, "tunnel", "vnet", "list")...); code != 5 || !strings.Contains(out, "invalid token: the edge no longer accepts the admin session of ada@example.com") {
		t.Fatalf("vnet list with an ended session's token: exit %d\n%s", code, out)
	}
	os.Remove(session)

	// A user outside the admin group: the edge's refusal, nothing kept.
	out, err = login(t, ctx, flags, approve(t, op, loginUser))
	if err == nil || !strings.Contains(describe(err), `bob@example.org is not an admin: not in the identity provider's group "sy-admins"`) || exitCode(err) != 4 {
		t.Fatalf("login as a non-admin: %v (exit %d)\n%s", err, exitCode(err), out)
	}
	if _, err := os.Stat(session); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("session file after a refused login: %v", err)
	}
}

// TestAdminLoginInterrupted: Ctrl-C while login waits stops it cleanly,
// keeping nothing.
func TestAdminLoginInterrupted(t *testing.T) {
	flags, session, _ := loginEdge(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, err := login(t, ctx, flags, func(string) { time.AfterFunc(1500*time.Millisecond, cancel) })
	if err == nil || err.Error() != "login: stopped before the sign-in finished; nothing was saved" {
		t.Fatalf("interrupted login: %v\n%s", err, out)
	}
	if _, err := os.Stat(session); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("session file after an interrupted login: %v", err)
	}
}

// TestAdminLoginBrowser: --flow browser prints the provider's URL; the
// admin signs in there, the browser lands on the edge's callback, and login
// keeps the session.
func TestAdminLoginBrowser(t *testing.T) {
	flags, session, op := loginEdge(t)
	caPEM, err := os.ReadFile(flags[3])
	if err != nil {
		t.Fatal(err)
	}
	op.AllowRedirectURI(flags[1] + "/v1/login/callback")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	browser := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	urlRE := regexp.MustCompile(`open this URL in a browser:\n\n  (\S+)\n`)
	out, err := login(t, context.Background(), flags, func(printed string) {
		m := urlRE.FindStringSubmatch(printed)
		if m == nil {
			t.Errorf("login printed no URL:\n%s", printed)
			return
		}
		cb, err := op.SignIn(context.Background(), m[1], loginAdmin)
		if err != nil {
			t.Error(err)
			return
		}
		resp, err := browser.Get(cb)
		if err != nil {
			t.Error(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "Signed in as ada@example.com") {
			t.Errorf("callback page: %s %s", resp.Status, body)
		}
	}, "--flow", "browser")
	if err != nil || !strings.Contains(out, "as ada@example.com; the admin session lasts until") {
		t.Fatalf("browser login: %v\n%s", err, out)
	}
	if out, code := runBin(t, append(flags, "tunnel", "vnet", "list")...); code != 0 || !strings.Contains(out, "default") {
		t.Fatalf("vnet list with the admin session: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(session); err != nil {
		t.Fatal(err)
	}
}

// TestAdminLoginPlainHTTP: login follows the CLI's rule for plain http://:
// refused without --insecure-http, and to a remote address always; nothing
// is sent.
func TestAdminLoginPlainHTTP(t *testing.T) {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen.Add(1) }))
	defer srv.Close()
	session := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(session+".admin", []byte("{}"), 0o600); err != nil { // an admin config without a CA
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--api", srv.URL},
		{"--api", "http://192.0.2.1:7443", "--insecure-http"},
	} {
		full := append(append([]string{"switchyard", "--session", session, "--config", session + ".admin"}, args...), "login")
		err := newApp(io.Discard, io.Discard).RunContext(context.Background(), full)
		if err == nil || !strings.Contains(err.Error(), "use https://") {
			t.Errorf("%v: %v; want a refusal that says to use https://", args, err)
		}
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("login went out over plain HTTP %d time(s)", n)
	}
}
