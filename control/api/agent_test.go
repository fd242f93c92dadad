package api_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/store/memstore"
	"github.com/switchyard/switchyard/control/token"
)

// newPinnedServer serves the API with a certificate from a real edge CA, as
// the edge does, and returns an admin client.
func newPinnedServer(t *testing.T) (*client.Client, *registry.Registry) {
	t.Helper()
	admin, reg, _ := newPinnedAPI(t)
	return admin, reg
}

// newPinnedAPI is newPinnedServer that also returns the API server; wrap,
// if given, wraps the store the registry uses.
func newPinnedAPI(t *testing.T, wrap ...func(store.Store) store.Store) (*client.Client, *registry.Registry, *api.Server) {
	t.Helper()
	return newPinnedAPIWith(t, nil, wrap...)
}

// newPinnedAPIWith is newPinnedAPI with the server's options changed by
// tweak (if not nil).
func newPinnedAPIWith(t *testing.T, tweak func(*api.Options), wrap ...func(store.Store) store.Store) (*client.Client, *registry.Registry, *api.Server) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	var rs store.Store = st
	for _, w := range wrap {
		rs = w(rs)
	}
	reg, err := registry.New(context.Background(), rs, registry.Options{Secrets: secrets{}})
	if err != nil {
		t.Fatal(err)
	}
	opts := api.Options{
		AdminTokenHash: sha256.Sum256([]byte(adminToken)),
		Edge:           api.EdgeInfo{CAPin: pki.Pin(ca.Cert), Endpoint: "192.0.2.1:51820", EdgeKey: "k", MTU: 1380, MASQUE: "192.0.2.1:443"},
	}
	if tweak != nil {
		tweak(&opts)
	}
	h := api.NewServer(reg, opts)
	t.Cleanup(func() { h.Close() }) // after the HTTP server's
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// The token carries the API address the edge advertises.
	h.SetAPIURL(srv.URL)
	admin, err := client.New(srv.URL, adminToken, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return admin, reg, h
}

func wgKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestConnectorEnrollAndFollow(t *testing.T) {
	admin, _ := newPinnedServer(t)
	ctx := context.Background()
	fra, err := admin.CreateTunnel(ctx, "fra")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateTunnel(ctx, "syd"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddRoute(ctx, model.NewRoute{Network: netip.MustParsePrefix("10.1.0.0/16"), Tunnel: "fra"}); err != nil {
		t.Fatal(err)
	}
	agent, _, err := client.NewConnector(fra.Token)
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := agent.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: wgKey(), Hostname: "gw-fra"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := enrolled.Config
	if cfg.TunnelName != "fra" || cfg.MTU != 1380 || cfg.Edge.Endpoint != "192.0.2.1:51820" || cfg.Edge.MASQUE != "192.0.2.1:443" || len(cfg.SitePrefixes) != 1 {
		t.Fatalf("enrollment config = %+v", cfg)
	}

	_, tag, changed, err := agent.WatchConnectorConfig(ctx, enrolled.Connector.ID, "", time.Second)
	if err != nil || !changed || tag == "" {
		t.Fatalf("first config fetch: changed=%v tag=%q err=%v", changed, tag, err)
	}
	if _, _, changed, err := agent.WatchConnectorConfig(ctx, enrolled.Connector.ID, tag, time.Second); err != nil || changed {
		t.Fatalf("no change within the wait: changed=%v err=%v, want 304", changed, err)
	}

	// A route added elsewhere reaches the waiting connector.
	go func() {
		time.Sleep(200 * time.Millisecond)
		admin.AddRoute(ctx, model.NewRoute{Network: netip.MustParsePrefix("10.3.0.0/16"), Tunnel: "syd"})
	}()
	start := time.Now()
	cfg, _, changed, err = agent.WatchConnectorConfig(ctx, enrolled.Connector.ID, tag, 10*time.Second)
	if err != nil || !changed || !containsPrefix(cfg.Routes, "10.3.0.0/16") {
		t.Fatalf("pushed config: changed=%v err=%v routes=%v", changed, err, cfg.Routes)
	}
	t.Logf("route change reached the connector %v after it was made", time.Since(start)-200*time.Millisecond)

	// Another tunnel's token cannot read this connector's config.
	other, _ := admin.TunnelToken(ctx, "syd")
	otherAgent, _, _ := client.NewConnector(other.Token)
	if _, _, _, err := otherAgent.WatchConnectorConfig(ctx, enrolled.Connector.ID, "", time.Second); err == nil {
		t.Fatal("another tunnel's token read the connector's config")
	}
	// A deleted tunnel's token stops working.
	if _, err := admin.DeleteTunnel(ctx, "fra", true); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: wgKey()}); err == nil || !strings.Contains(err.Error(), "invalid tunnel token") {
		t.Fatalf("enrolling with a deleted tunnel's token: %v", err)
	}
}

func TestConnectorRefusesUnpinnedEdge(t *testing.T) {
	admin, _ := newPinnedServer(t)
	created, err := admin.CreateTunnel(context.Background(), "fra")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.DecodeTunnel(created.Token)
	if err != nil {
		t.Fatal(err)
	}
	impostor := httptest.NewTLSServer(nil) // a server whose certificate another CA signed
	defer impostor.Close()
	tok.API = impostor.URL
	agent, _, err := client.NewConnector(tok.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.EnrollConnector(context.Background(), model.ConnectorEnrollment{PublicKey: wgKey()}); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("enrolling with an edge whose CA is not pinned: %v", err)
	}
}

func containsPrefix(ps []netip.Prefix, s string) bool {
	for _, p := range ps {
		if p.String() == s {
			return true
		}
	}
	return false
}

func TestDeviceEnrollSelectRevoke(t *testing.T) {
	admin, _ := newPinnedServer(t)
	ctx := context.Background()
	et, err := admin.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: "laptops", User: "ada@example.com"})
	if err != nil || et.Token == "" {
		t.Fatalf("create enroll token: %+v, %v", et, err)
	}
	enroller, err := client.NewEnroller(et.Token)
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", DeviceType: "linux", OSVersion: "6.1", Version: "dev", PublicKey: wgKey()})
	if err != nil {
		t.Fatal(err)
	}
	if !enrolled.Device.IP.IsValid() || enrolled.Config.IP != enrolled.Device.IP || enrolled.Config.SplitTunnel.Mode != model.SplitExclude {
		t.Fatalf("enrolled = %+v", enrolled)
	}
	dev, err := client.NewDevice(enrolled.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateVNet(ctx, model.NewVNet{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	cfg, tag, changed, err := dev.WatchDeviceConfig(ctx, "", time.Second)
	if err != nil || !changed || cfg.VNetName != "default" {
		t.Fatalf("device config: %+v changed=%v err=%v", cfg, changed, err)
	}
	if v, err := dev.SelectVNet(ctx, "lab"); err != nil || v.Name != "lab" {
		t.Fatalf("select vnet: %+v, %v", v, err)
	}
	cfg, _, changed, err = dev.WatchDeviceConfig(ctx, tag, 5*time.Second)
	if err != nil || !changed || cfg.VNetName != "lab" {
		t.Fatalf("config after switching vnet: %+v changed=%v err=%v", cfg, changed, err)
	}
	devices, err := admin.ListDevices(ctx, false)
	if err != nil || len(devices) != 1 || devices[0].Name != "laptop" || devices[0].User != "ada@example.com" || devices[0].Key == "" || devices[0].EnrollToken != et.ID {
		t.Fatalf("device list = %+v, %v", devices, err)
	}
	if _, err := admin.RevokeDevice(ctx, "laptop"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := dev.WatchDeviceConfig(ctx, "", time.Second); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("a revoked device's credential: %v", err)
	}
	if _, err := client.NewDevice(et.Token); err == nil {
		t.Fatal("an enrollment token was accepted as a device credential")
	}
}

// TestDeviceReenrollAPI: over the API, taking over another device's key is
// refused with 409 and leaves the victim working; a claimed user is refused
// with 403; a revoked key is refused with 403 until an admin unrevokes it;
// the device itself re-enrolls with its credential.
func TestDeviceReenrollAPI(t *testing.T) {
	admin, _ := newPinnedServer(t)
	ctx := context.Background()
	newEnroller := func(req model.NewEnrollToken) *client.Client {
		t.Helper()
		et, err := admin.CreateEnrollToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e, err := client.NewEnroller(et.Token)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// The client maps the HTTP status to the error's kind.
	wantCode := func(err error, kind model.Kind, code int, contains string) {
		t.Helper()
		var e *model.Error
		if !errors.As(err, &e) || e.Kind != kind || e.Code != code || !strings.Contains(e.Message, contains) {
			t.Fatalf("got %#v, want kind %v, code %d, a message saying %q", err, kind, code, contains)
		}
	}
	alice := newEnroller(model.NewEnrollToken{User: "alice@example.com"})
	mallory := newEnroller(model.NewEnrollToken{User: "mallory@example.net"})
	key := wgKey()
	victim, err := alice.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: key})
	if err != nil {
		t.Fatal(err)
	}
	_, err = mallory.EnrollDevice(ctx, model.DeviceEnrollment{Name: "pwned", PublicKey: key, User: "mallory@example.net"})
	wantCode(err, model.KindConflict, model.CodeConflict, "already enrolled")
	_, err = mallory.EnrollDevice(ctx, model.DeviceEnrollment{Name: "pwned", PublicKey: key, Credential: "not a credential"})
	wantCode(err, model.KindUnauthorized, model.CodeUnauthorized, "credential")
	dev, err := client.NewDevice(victim.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _, _, err := dev.WatchDeviceConfig(ctx, "", 0); err != nil || cfg.IP != victim.Device.IP {
		t.Fatalf("the victim after a takeover attempt: %+v, %v", cfg, err)
	}
	_, err = mallory.EnrollDevice(ctx, model.DeviceEnrollment{Name: "boss", PublicKey: wgKey(), User: "admin@example.com"})
	wantCode(err, model.KindForbidden, model.CodeForbidden, "comes from its enrollment token")

	again, err := alice.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: key, Credential: victim.Credential})
	if err != nil || again.Device.ID != victim.Device.ID || again.Device.IP != victim.Device.IP {
		t.Fatalf("re-enrolling with its own credential: %+v, %v", again.Device, err)
	}
	if _, err := admin.RevokeDevice(ctx, "laptop"); err != nil {
		t.Fatal(err)
	}
	_, err = alice.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: key, Credential: again.Credential})
	wantCode(err, model.KindForbidden, model.CodeForbidden, "device unrevoke")
	if _, err := admin.UnrevokeDevice(ctx, victim.Device.ID.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: key}); err != nil {
		t.Fatalf("enrolling after unrevoke: %v", err)
	}

	once := newEnroller(model.NewEnrollToken{MaxUses: 1, TTL: time.Minute})
	if _, err := once.EnrollDevice(ctx, model.DeviceEnrollment{Name: "one", PublicKey: wgKey()}); err != nil {
		t.Fatal(err)
	}
	_, err = once.EnrollDevice(ctx, model.DeviceEnrollment{Name: "two", PublicKey: wgKey()})
	wantCode(err, model.KindUnauthorized, model.CodeUnauthorized, "used up")
}

func TestSplitTunnelAPI(t *testing.T) {
	admin, _ := newPinnedServer(t)
	ctx := context.Background()
	st, err := admin.SetSplitMode(ctx, model.SplitInclude)
	if err != nil || st.Mode != model.SplitInclude || len(st.Entries) != 0 {
		t.Fatalf("set include: %+v, %v", st, err)
	}
	if st, err = admin.AddSplitEntry(ctx, model.SplitEntry{Address: netip.MustParsePrefix("2001:db8::/32"), Description: "docs"}); err != nil || len(st.Entries) != 1 {
		t.Fatalf("add: %+v, %v", st, err)
	}
	if st, err = admin.RemoveSplitEntry(ctx, "2001:db8::/32"); err != nil || len(st.Entries) != 0 {
		t.Fatalf("remove: %+v, %v", st, err)
	}
	if _, err := admin.SetSplitMode(ctx, "both"); err == nil {
		t.Fatal("a bad mode was accepted")
	}
}
