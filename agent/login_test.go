package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/oidc"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store/memstore"
	"github.com/switchyard/switchyard/internal/testop"
)

var (
	alice   = testop.User{Email: "alice@example.com", Password: "pw-alice", Groups: []string{"eng"}}
	mallory = testop.User{Email: "mallory@other.example", Password: "pw-mallory"}
)

// loginEdge serves the control API with sign-in through a real OpenID
// provider, and returns an admin client, the provider, and the edge's API
// address and CA pin (what client up --login --edge --edge-ca-pin takes).
func loginEdge(t *testing.T) (*client.Client, *testop.Provider, string, string) {
	t.Helper()
	op, err := testop.Start(testop.Config{ClientID: "sy", ClientSecret: "sy-secret", Users: []testop.User{alice, mallory}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	rp, err := oidc.New(context.Background(), oidc.Config{Issuer: op.Issuer(), ClientID: "sy", ClientSecret: "sy-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rp.Close() })
	ca, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: testSecrets{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	h := api.NewServer(reg, api.Options{
		AdminTokenHash: sha256.Sum256([]byte("admin")),
		Edge:           api.EdgeInfo{CAPin: pki.Pin(ca.Cert), Endpoint: "192.0.2.1:51820", EdgeKey: "k", MTU: 1380},
		Logins:         rp,
	})
	srv.Config.Handler = h
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.SetAPIURL(srv.URL)
	admin, err := client.New(srv.URL, "admin", ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return admin, op, srv.URL, pki.Pin(ca.Cert)
}

// user plays the person at the terminal: it reads the code the client
// prints and approves it at the provider as u.
type user struct {
	mu  sync.Mutex
	buf bytes.Buffer
	op  *testop.Provider
	u   testop.User
	t   *testing.T
}

var codeLine = regexp.MustCompile(`enter the code\n\n  (\S+)\n`)

func (p *user) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := codeLine.MatchString(p.buf.String())
	p.buf.Write(b)
	if m := codeLine.FindStringSubmatch(p.buf.String()); m != nil && !before {
		go func() {
			if err := p.op.ApproveDevice(context.Background(), m[1], p.u); err != nil {
				p.t.Errorf("approving the code %s as %s: %v", m[1], p.u.Email, err)
			}
		}()
	}
	return len(b), nil
}

func (p *user) output() string { p.mu.Lock(); defer p.mu.Unlock(); return p.buf.String() }

func TestClientSignsIn(t *testing.T) {
	admin, op, apiURL, pin := loginEdge(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := admin.AddEnrollmentRule(ctx, model.NewEnrollmentRule{Name: "corp", EmailDomains: []string{"example.com"}}); err != nil {
		t.Fatal(err)
	}

	// Without --edge, a device with no credential does not know where to sign in.
	dir := t.TempDir()
	log, k, err := prepare(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := deviceClient(ctx, ClientConfig{Login: true, StateDir: dir, Name: "laptop"}, k, log); err == nil || !strings.Contains(err.Error(), "--edge") {
		t.Fatalf("signing in without --edge: %v", err)
	}

	// Mallory is outside every rule: refused, no device.
	md := t.TempDir()
	_, mk, _ := prepare(md, nil)
	term := &user{op: op, u: mallory, t: t}
	_, _, _, err = deviceClient(ctx, ClientConfig{Login: true, StateDir: md, Name: "evil", EdgeAPI: apiURL, EdgeCAPin: pin, LoginOut: term}, mk, log)
	if !errors.Is(err, model.ErrForbidden) || !strings.Contains(err.Error(), "mallory@other.example") || !strings.Contains(err.Error(), "no enrollment rule admits") {
		t.Fatalf("mallory's sign-in: %v, want refused naming her", err)
	}

	// Alice signs in by device code.
	term = &user{op: op, u: alice, t: t}
	cfg := ClientConfig{Login: true, StateDir: dir, Name: "laptop", EdgeAPI: apiURL, EdgeCAPin: pin, LoginOut: term}
	dev, _, _, err := deviceClient(ctx, cfg, k, log)
	if err != nil {
		t.Fatalf("alice's sign-in: %v\n%s", err, term.output())
	}
	if out := term.output(); !strings.Contains(out, "To sign in, open http") || !strings.Contains(out, "user_code=") || !strings.Contains(out, "Signed in as alice@example.com") {
		t.Fatalf("what the client printed:\n%s", out)
	}
	devices, err := admin.ListDevices(ctx, true)
	if err != nil || len(devices) != 1 || devices[0].User != alice.Email || devices[0].SessionExpiresAt == nil {
		t.Fatalf("devices = %+v, %v; want alice's alone, with a session", devices, err)
	}
	conf, _, _, err := dev.WatchDeviceConfig(ctx, "", 0)
	if err != nil || conf.SessionExpiresAt == nil {
		t.Fatalf("alice's config: %+v, %v", conf, err)
	}

	// A restart with a live session does not sign in again.
	term2 := &user{op: op, u: alice, t: t}
	cfg.LoginOut = term2
	if _, _, _, err := deviceClient(ctx, cfg, k, log); err != nil || term2.output() != "" {
		t.Fatalf("restart with a live session: %v, printed %q", err, term2.output())
	}

	// Logged out: the edge says so recognisably; --login signs in again as
	// the same device.
	if _, err := admin.LogoutUser(ctx, alice.Email); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := dev.WatchDeviceConfig(ctx, "", 0); !client.SessionExpired(err) {
		t.Fatalf("config after logout: %v", err)
	}
	if err := sessionStop(dir, &conf, log); !errors.Is(err, ErrSessionExpired) || !strings.Contains(err.Error(), "run switchyard client up --login") {
		t.Fatalf("sessionStop = %v", err)
	}
	if ended, ok := ReadSessionEnded(dir); !ok || !strings.Contains(ended.Message, "session expired at") {
		t.Fatalf("the note client status reads: %+v, %v", ended, ok)
	}
	again, _, _, err := deviceClient(ctx, cfg, k, log)
	if err != nil {
		t.Fatalf("signing in again: %v\n%s", err, term2.output())
	}
	conf2, _, _, err := again.WatchDeviceConfig(ctx, "", 0)
	if err != nil || conf2.DeviceID != conf.DeviceID || conf2.IP != conf.IP {
		t.Fatalf("after signing in again: %+v, %v; want device %s", conf2, err, conf.DeviceID)
	}
	if _, ok := ReadSessionEnded(dir); ok {
		t.Fatal("the session note outlived a new sign-in")
	}
}
