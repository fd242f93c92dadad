package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store/memstore"
)

type testSecrets struct{}

func (testSecrets) TunnelSecret(id uuid.UUID) []byte { return id[:] }

// newEdgeAPI serves the control API as the edge does (a certificate from
// its own CA, pinned by the tokens) and returns an admin client.
func newEdgeAPI(t *testing.T) *client.Client {
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
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: testSecrets{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	h := api.NewServer(reg, api.Options{
		AdminTokenHash: sha256.Sum256([]byte("admin")),
		Edge:           api.EdgeInfo{CAPin: pki.Pin(ca.Cert), Endpoint: "192.0.2.1:51820", EdgeKey: "k", MTU: 1380},
	})
	srv.Config.Handler = h
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.SetAPIURL(srv.URL)
	admin, err := client.New(srv.URL, "admin", ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return admin
}

// TestClientReenrollsAsItself: a client that keeps its state dir but lost
// its credential (or never saw the answer to its enrollment) enrolls again
// as the same device, by its key proof; another host with only the public
// key cannot.
func TestClientReenrollsAsItself(t *testing.T) {
	admin := newEdgeAPI(t)
	ctx := context.Background()
	newToken := func() string {
		t.Helper()
		et, err := admin.CreateEnrollToken(ctx, model.NewEnrollToken{User: "alice@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		return et.Token
	}
	dir := t.TempDir()
	log, k, err := prepare(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ClientConfig{Token: newToken(), StateDir: dir, Name: "laptop"}
	if _, _, _, err := deviceClient(ctx, cfg, k, log); err != nil {
		t.Fatal(err)
	}
	first, err := admin.ListDevices(ctx, false)
	if err != nil || len(first) != 1 || first[0].User != "alice@example.com" {
		t.Fatalf("devices after enrollment: %+v, %v", first, err)
	}

	// A restart with the state dir uses the stored credential.
	cfg.Token = ""
	if _, _, _, err := deviceClient(ctx, cfg, k, log); err != nil {
		t.Fatalf("restart with the state dir: %v", err)
	}
	// The credential is lost; the key is kept.
	os.Remove(filepath.Join(dir, credentialFile))
	cfg.Token = newToken()
	_, k2, err := prepare(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev, _, _, err := deviceClient(ctx, cfg, k2, log)
	if err != nil {
		t.Fatalf("re-enrolling with the kept key: %v", err)
	}
	conf, _, _, err := dev.WatchDeviceConfig(ctx, "", 0)
	if err != nil || conf.DeviceID != first[0].ID || conf.IP != first[0].IP {
		t.Fatalf("re-enrolled as %+v, %v; want device %s at %s", conf, err, first[0].ID, first[0].IP)
	}

	// Another host presenting the same public key with another private key's proof.
	var thief key
	thief.public = k.public
	thief.private[0] = 1
	_, err = enrollDevice(ctx, ClientConfig{Token: newToken(), Name: "thief"}, thief, log)
	if !errors.Is(err, model.ErrConflict) {
		t.Fatalf("enrolling someone else's key: %v, want a conflict", err)
	}
	if _, _, _, err := dev.WatchDeviceConfig(ctx, "", 0); err != nil {
		t.Fatalf("the device after the attempt: %v", err)
	}
}

func TestKeyProofIsStable(t *testing.T) {
	dir := t.TempDir()
	k1, err := loadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := loadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := loadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if p := k1.keyProof(); len(p) != model.KeyProofLen || string(p) != string(k2.keyProof()) || string(p) == string(other.keyProof()) {
		t.Fatal("the key proof is not a stable function of the private key")
	}
}
