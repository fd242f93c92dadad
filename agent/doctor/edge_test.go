package doctor

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store/memstore"
	"github.com/switchyard/switchyard/transport/wireguard"
)

type testSecrets struct{}

func (testSecrets) TunnelSecret(id uuid.UUID) []byte {
	return append([]byte("0123456789abcdef"), id[:]...)
}

// testEdge is a real API server over TLS with a pinned CA, and a real
// WireGuard endpoint on loopback whose peers are the enrolled keys.
type testEdge struct {
	admin *client.Client
	wg    *wireguard.Endpoint
}

// newTestEdge serves the API with wgEndpoint as its advertised WireGuard
// endpoint ("" means its own endpoint's).
func newTestEdge(t *testing.T, wgEndpoint string) *testEdge {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir())
	must(t, err)
	cert, err := ca.IssueServer([]string{"127.0.0.1"})
	must(t, err)
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: testSecrets{}})
	must(t, err)
	priv, err := wireguard.GeneratePrivateKey()
	must(t, err)
	wg, err := wireguard.New(wireguard.Config{PrivateKey: priv, Receiver: wireguard.ReceiverFunc(func([]wireguard.Packet) {})})
	must(t, err)
	t.Cleanup(func() { wg.Close() })
	if wgEndpoint == "" {
		wgEndpoint = "127.0.0.1:" + strconv.Itoa(int(wg.Port()))
	}
	h := api.NewServer(reg, api.Options{AdminTokenHash: sha256.Sum256([]byte("admin")),
		Edge: api.EdgeInfo{CAPin: pki.Pin(ca.Cert), Endpoint: wgEndpoint, EdgeKey: wg.PublicKey().String(), MTU: 1380}})
	t.Cleanup(func() { h.Close() })
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.SetAPIURL(srv.URL)
	admin, err := client.New(srv.URL, "admin", ca.CertPEM)
	must(t, err)
	return &testEdge{admin: admin, wg: wg}
}

// tunnel creates a tunnel and returns its token.
func (e *testEdge) tunnel(t *testing.T, name string) string {
	t.Helper()
	created, err := e.admin.CreateTunnel(context.Background(), name)
	must(t, err)
	return created.Token
}

// enroll enrolls key under the tunnel token tok, as the connector does when
// it starts, and makes it a peer of the edge's WireGuard endpoint.
func (e *testEdge) enroll(t *testing.T, tok string, key wireguard.PrivateKey) {
	t.Helper()
	c, _, err := client.NewConnector(tok)
	must(t, err)
	_, err = c.EnrollConnector(context.Background(), model.ConnectorEnrollment{PublicKey: key.PublicKey().String(), Hostname: "gw"})
	must(t, err)
	_, err = e.wg.AddPeer(wireguard.PeerConfig{PublicKey: key.PublicKey()})
	must(t, err)
}

// remote runs the edge checks with token tok and the agent's key.
func remote(tok string, key wireguard.PrivateKey, d Daemon) Report {
	return Run(context.Background(), Config{Role: "connector", Token: tok, Daemon: d, Key: key})
}

// TestTokenAndWireGuardPort runs the edge checks against a real API and
// WireGuard endpoint: a token the edge accepts and a handshake with the
// agent's enrolled key pass; a key not enrolled yet skips the handshake; a
// healthy running agent is left alone; an edge whose WireGuard port does
// not answer fails with the firewall fix; a deleted tunnel's token fails
// with the command that prints its token.
func TestTokenAndWireGuardPort(t *testing.T) {
	e := newTestEdge(t, "")
	tok := e.tunnel(t, "fra")
	key, err := wireguard.GeneratePrivateKey()
	must(t, err)
	notRunning := fakeDaemon{err: notRunningErr{}}

	r := remote(tok, key, notRunning)
	if c := only(t, r, "token"); c.Status != OK || !strings.Contains(c.Detail, `"fra"`) || !strings.Contains(c.Detail, "accepts") {
		t.Errorf("a valid token: %+v", c)
	}
	if c := only(t, r, "wireguard"); c.Status != Warn || !strings.Contains(c.Detail, "not enrolled") {
		t.Errorf("a key not enrolled yet: %+v, want warn", c)
	}
	if c := only(t, remote(tok, wireguard.PrivateKey{}, notRunning), "wireguard"); c.Status != Warn || !strings.Contains(c.Detail, "no WireGuard key") {
		t.Errorf("no key yet: %+v, want warn", c)
	}

	e.enroll(t, tok, key)
	r = remote(tok, key, notRunning)
	if c := only(t, r, "wireguard"); c.Status != OK || !strings.Contains(c.Detail, "handshake") {
		t.Errorf("enrolled key, agent stopped: %+v, want a handshake", c)
	}
	// The edge takes the handshake as done when doctor's keepalive
	// arrives, which doctor sends but does not wait for.
	sawHandshake := func() bool { s := e.wg.Peer(key.PublicKey()); return s != nil && !s.LastHandshake().IsZero() }
	for deadline := time.Now().Add(2 * time.Second); !sawHandshake() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !sawHandshake() {
		t.Error("the edge's endpoint saw no handshake from the agent's key")
	}
	if r.Failed() != 0 {
		t.Errorf("failures against a healthy edge: %+v", r.Checks)
	}

	healthy := fakeDaemon{st: localapi.Status{Role: "connector", PID: 7, Healthy: true, RTT: "1ms", PathMTU: &localapi.PathMTU{State: localapi.PathMTUProbing}}}
	before := e.wg.Peer(key.PublicKey()).LastHandshake()
	if c := only(t, remote(tok, key, healthy), "wireguard"); c.Status != OK || !strings.Contains(c.Detail, "running agent") {
		t.Errorf("a healthy agent: %+v", c)
	}
	if after := e.wg.Peer(key.PublicKey()).LastHandshake(); !after.Equal(before) {
		t.Error("doctor shook hands beside a healthy running agent")
	}

	// An edge that advertises a WireGuard port nothing answers on.
	closed := newTestEdge(t, "127.0.0.1:9")
	ctok := closed.tunnel(t, "syd")
	closed.enroll(t, ctok, key)
	if c := only(t, remote(ctok, key, notRunning), "wireguard"); c.Status != Fail || c.Fix != "nft add rule inet filter output udp dport 9 accept" {
		t.Errorf("a silent WireGuard port: %+v, want fail with the firewall fix", c)
	}

	tun, err := e.admin.GetTunnel(context.Background(), "fra")
	must(t, err)
	_, err = e.admin.DeleteTunnel(context.Background(), "fra", true)
	must(t, err)
	r = remote(tok, key, notRunning)
	if c := only(t, r, "token"); c.Status != Fail || c.Fix != "switchyard tunnel token "+tun.ID.String() || !strings.Contains(c.Detail, "refuses") {
		t.Errorf("a deleted tunnel's token: %+v, want fail with its fix", c)
	}
	if len(r.Find("wireguard")) != 0 {
		t.Errorf("handshake tried with a refused token: %+v", r.Checks)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
