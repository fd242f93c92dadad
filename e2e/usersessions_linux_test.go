//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/lab"
	"github.com/switchyard/switchyard/internal/testop"
)

var (
	opAlice   = testop.User{Email: "alice@example.com", Password: "pw-alice", Groups: []string{"eng"}}
	opMallory = testop.User{Email: "mallory@other.example", Password: "pw-mallory", Groups: []string{"eng"}}
	opBob     = testop.User{Email: "bob@example.com", Password: "pw-bob", Groups: []string{"sales"}}
)

// startOP starts the test's OpenID provider in the test's own namespace on
// 127.0.0.1 and makes it reachable at the same address inside ns (a
// forwarder there), so that the issuer URL is one for the edge and for the
// test that plays the users.
func startOP(t *testing.T, ns *lab.NS) *testop.Provider {
	t.Helper()
	op, err := testop.Start(testop.Config{ClientID: "switchyard", ClientSecret: "op-secret", Users: []testop.User{opAlice, opMallory, opBob}})
	must(t, err)
	t.Cleanup(func() { op.Close() })
	addr := strings.TrimPrefix(op.Issuer(), "http://")
	ln, err := ns.Listen("tcp", addr)
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return op
}

var userCode = regexp.MustCompile(`enter the code\n\n  (\S+)\n`)

// loginClient starts client up --login for a device called name in ns and
// approves its device code at the provider as u; it returns the client.
func (w *world) loginClient(ns *lab.NS, op *testop.Provider, name, tun string, u testop.User, loginArgs []string) *lab.Proc {
	w.t.Helper()
	args := append([]string{binary, "client", "up", "--login", "--state-dir", filepath.Join(w.dir, name),
		"--tun-name", tun, "--name", name, "--protocol", w.protocol, "--resolv-conf", filepath.Join(w.dir, name+"-resolv.conf")}, loginArgs...)
	p := ns.Start(w.t, args...)
	must(w.t, p.WaitFor("Waiting for the sign-in", 20*time.Second))
	m := userCode.FindStringSubmatch(p.Output())
	if m == nil {
		w.t.Fatalf("the client printed no code:\n%s", p.Output())
	}
	if !strings.Contains(p.Output(), "user_code=") {
		w.t.Fatalf("the client printed no complete address:\n%s", p.Output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	must(w.t, op.ApproveDevice(ctx, m[1], u))
	return p
}

func (w *world) deviceNamed(name string) (model.Device, bool) {
	var devices []model.Device
	must(w.t, json.Unmarshal([]byte(w.cli("device", "list", "--show-revoked", "-o", "json")), &devices))
	for _, d := range devices {
		if d.Name == name {
			return d, true
		}
	}
	return model.Device{}, false
}

// clientStatus runs client status for the state dir of name.
func (w *world) clientStatus(ns *lab.NS, name string) (string, error) {
	return ns.Exec("env", "GORACE=atexit_sleep_ms=0", binary, "client", "status", "--state-dir", filepath.Join(w.dir, name))
}

// newSignInWorld starts an edge that signs users in with the test's OpenID
// provider, site A (10.1.0.0/16, an echo on 10.1.2.3:7000) and a rule
// "corp" admitting @example.com for sessions of session; it returns the
// world, the provider and the arguments of enrollment login-command.
func newSignInWorld(t *testing.T, session string) (*world, *testop.Provider, []string) {
	w := newWorld(t)
	op := startOP(t, w.edge)
	secret := filepath.Join(w.dir, "oidc-secret")
	must(t, os.WriteFile(secret, []byte("op-secret\n"), 0o600))
	w.startEdge("--oidc-issuer", op.Issuer(), "--oidc-client-id", "switchyard", "--oidc-client-secret-file", secret)
	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	tok := w.tunnelToken("site-a")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.1.0.0/16", "site-a")
	w.startConnector(w.gwa, "gwa", tok)
	w.hosta.Echo(t, "10.1.2.3:7000")
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")
	w.cli("enrollment", "rule", "add", "--email-domain", "example.com", "--session-duration", session, "corp")
	loginArgs := strings.Fields(strings.TrimPrefix(strings.TrimSpace(w.cli("enrollment", "login-command")), "switchyard client up --login"))
	if len(loginArgs) != 4 {
		t.Fatalf("enrollment login-command: %v", loginArgs)
	}
	return w, op, loginArgs
}

// TestUserSessionsE2E: an edge signs users in with a real OpenID provider
// and a rule admits @example.com. alice signs in by device code and
// reaches site A, which sees her overlay IP; mallory is refused with a
// clear message and no device is created. Alice's session (1m) ends: her
// traffic stops, her client stops and client status says so. She signs in
// again (same device, new session); an admin's user logout cuts her off
// the same way.
func TestUserSessionsE2E(t *testing.T) {
	w, op, loginArgs := newSignInWorld(t, "1m")

	// Mallory: refused, with a message naming her, and no device.
	evil := w.loginClient(w.laptop, op, "mallory-laptop", "sy2", opMallory, loginArgs)
	if err := evil.Wait(); err == nil {
		t.Fatal("mallory's client up --login succeeded")
	}
	if out := evil.Output(); !strings.Contains(out, "no enrollment rule admits user mallory@other.example") {
		t.Fatalf("mallory's client said:\n%s", out)
	}
	if d, ok := w.deviceNamed("mallory-laptop"); ok {
		t.Fatalf("a device was created for mallory: %+v", d)
	}

	// Alice: signed in, she reaches the site from her overlay IP.
	alice := w.loginClient(w.laptop, op, "alice-laptop", "sy1", opAlice, loginArgs)
	must(t, alice.WaitFor("host configured", 20*time.Second))
	dev, ok := w.deviceNamed("alice-laptop")
	if !ok || dev.User != opAlice.Email || dev.SessionExpiresAt == nil {
		t.Fatalf("alice's device: %+v (listed %v)", dev, ok)
	}
	wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", dev.IP.String())
	if out, err := w.clientStatus(w.laptop, "alice-laptop"); !strings.Contains(out, "SESSION EXPIRES") || !strings.Contains(out, dev.SessionExpiresAt.UTC().Format(time.RFC3339)) {
		t.Fatalf("client status while signed in: %v\n%s", err, out)
	}
	if out := w.cli("user", "list"); !strings.Contains(out, opAlice.Email) {
		t.Fatalf("user list:\n%s", out)
	}

	// The session ends: the traffic stops, the client says so and stops.
	time.Sleep(time.Until(*dev.SessionExpiresAt) + 500*time.Millisecond)
	if _, err := w.laptop.TCPEcho("10.1.2.3:7000"); err == nil {
		t.Fatal("alice reaches the site after her session ended")
	}
	must(t, alice.WaitFor("session expired at", 10*time.Second))
	if err := alice.Wait(); err == nil {
		t.Fatal("alice's client exited cleanly at its session's end")
	}
	out, err := w.clientStatus(w.laptop, "alice-laptop")
	if err == nil || !strings.Contains(out, "session expired at") || !strings.Contains(out, "run switchyard client up --login") {
		t.Fatalf("client status after the session ended: %v\n%s", err, out)
	}
	if list := w.cli("device", "list"); !strings.Contains(list, "ended ") {
		t.Fatalf("device list does not show the ended session:\n%s", list)
	}

	// She signs in again under a rule of 8h: the same device, a new session.
	w.cli("enrollment", "rule", "add", "--email-domain", "example.com", "--session-duration", "8h", "--precedence", "0", "corp-long")
	alice = w.loginClient(w.laptop, op, "alice-laptop", "sy1", opAlice, nil) // the credential names the edge
	must(t, alice.WaitFor("host configured", 20*time.Second))
	again, _ := w.deviceNamed("alice-laptop")
	if again.ID != dev.ID || again.IP != dev.IP || again.SessionExpiresAt == nil || time.Until(*again.SessionExpiresAt) < 7*time.Hour {
		t.Fatalf("after signing in again: %+v, want device %s with a session of 8h", again, dev.ID)
	}
	wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", dev.IP.String())

	// An admin logs her out: cut off the same way.
	if out := w.cli("user", "logout", opAlice.Email); !strings.Contains(out, "Ended the sessions of 1 device(s)") {
		t.Fatalf("user logout: %q", out)
	}
	must(t, eventually(3*time.Second, func() error {
		if _, err := w.laptop.TCPEcho("10.1.2.3:7000"); err == nil {
			return fmt.Errorf("alice still reaches the site after her logout")
		}
		return nil
	}))
	must(t, alice.WaitFor("session expired at", 10*time.Second))
	if out, err := w.clientStatus(w.laptop, "alice-laptop"); err == nil || !strings.Contains(out, "run switchyard client up --login") {
		t.Fatalf("client status after logout: %v\n%s", err, out)
	}
}
