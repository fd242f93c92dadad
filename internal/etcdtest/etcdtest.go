// Package etcdtest starts real etcd servers (go.etcd.io/etcd/server/v3/embed)
// on loopback for tests: one member or a cluster of several, each with its own
// data directory, stopped and removed when the test ends; or, with
// MemberCommand and MemberMain, one member in a process of its own (the test
// binary run again), for tests that need etcd inside a network namespace.
// Test-only, but for deploy/demo-etcd, the etcd member of make demo-cluster.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Member is one running etcd server.
type Member struct {
	Name      string
	ClientURL string // http://127.0.0.1:PORT
	dir       string
	cfg       *embed.Config
	etcd      *embed.Etcd
}

// Cluster is a set of members that form one etcd cluster.
type Cluster struct {
	t       testing.TB
	Members []*Member
}

// Start starts a one-member etcd and returns its client URL.
func Start(t testing.TB) string {
	return StartCluster(t, 1).Members[0].ClientURL
}

// StartCluster starts an n-member etcd cluster on loopback and waits until it
// has a leader. It is stopped when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return startCluster(t, n, nil)
}

func startCluster(t testing.TB, n int, tlsFiles *ClientTLS) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var initial []string
	for i := 0; i < n; i++ {
		m := &Member{Name: fmt.Sprintf("m%d", i), dir: t.TempDir()}
		peer, client := freePort(t), freePort(t)
		m.ClientURL = "http://" + client
		if tlsFiles != nil {
			m.ClientURL = "https://" + client
		}
		cfg := embed.NewConfig()
		cfg.Name = m.Name
		cfg.Dir = m.dir
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cu, pu := mustURL(t, m.ClientURL), mustURL(t, "http://"+peer)
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		if tlsFiles != nil {
			cfg.ClientTLSInfo = transport.TLSInfo{
				CertFile: tlsFiles.serverCert, KeyFile: tlsFiles.serverKey,
				TrustedCAFile: tlsFiles.CA, ClientCertAuth: true,
			}
		}
		cfg.InitialClusterToken = "switchyard-test"
		// Short raft timings: elections and failure detection in tests take
		// well under a second (loopback latency is negligible).
		cfg.TickMs, cfg.ElectionMs = 20, 200
		m.cfg = cfg
		initial = append(initial, m.Name+"="+pu.String())
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.cfg.InitialCluster = strings.Join(initial, ",")
	}
	// Members of a new cluster wait for each other: start them all, then wait.
	errs := make(chan error, n)
	for _, m := range c.Members {
		go func() { errs <- m.start() }()
	}
	for range c.Members {
		if err := <-errs; err != nil {
			c.stopAll()
			t.Fatal(err)
		}
	}
	t.Cleanup(c.stopAll)
	return c
}

func (m *Member) start() error {
	e, err := embed.StartEtcd(m.cfg)
	if err != nil {
		return fmt.Errorf("etcdtest: start member %s: %w", m.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcdtest: member %s: %w", m.Name, err)
	case <-time.After(20 * time.Second):
		e.Close()
		return fmt.Errorf("etcdtest: member %s not ready after 20s", m.Name)
	}
	m.etcd = e
	return nil
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Stop stops member i (as a crash would, from the others' point of view); its
// data stays for Restart.
func (c *Cluster) Stop(i int) {
	if m := c.Members[i]; m.etcd != nil {
		m.etcd.Close()
		m.etcd = nil
	}
}

// Restart starts a stopped member i again on its data and ports. A member of
// a cluster that lost quorum only becomes ready once enough members are
// back: restart them together with RestartAll.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	m := c.Members[i]
	if m.etcd != nil {
		return
	}
	m.cfg.ClusterState = embed.ClusterStateFlagExisting
	if err := m.start(); err != nil {
		c.t.Fatal(err)
	}
}

// RestartAll restarts every stopped member at once.
func (c *Cluster) RestartAll() {
	c.t.Helper()
	var stopped []*Member
	for _, m := range c.Members {
		if m.etcd == nil {
			m.cfg.ClusterState = embed.ClusterStateFlagExisting
			stopped = append(stopped, m)
		}
	}
	errs := make(chan error, len(stopped))
	for _, m := range stopped {
		go func() { errs <- m.start() }()
	}
	for range stopped {
		if err := <-errs; err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *Cluster) stopAll() {
	for i := range c.Members {
		c.Stop(i)
	}
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func mustURL(t testing.TB, s string) url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return *u
}
