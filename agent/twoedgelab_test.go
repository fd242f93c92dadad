package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/cluster"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/edge"
	"github.com/switchyard/switchyard/internal/etcdtest"
)

// twoEdgeLab is two edges of a cluster on one etcd, in process, and a
// connector of site-a (192.0.2.0/24 in vnet-a) and a client (laptop) that
// hold sessions to both: active on edge-1, whose API made their tokens
// (their home edge), standby on edge-2.
type twoEdgeLab struct {
	url             string // etcd's client URL
	key             cluster.Key
	e1, e2          *clusterEdge
	conn, cli       *inProcessAgent
	cs, cc          *localapi.Client // the connector's and the client's control sockets
	connLog, cliLog *lockedBuffer
	laptop          netip.Addr // the client's overlay address
	server          netip.Addr // an address on the site
}

// startTwoEdgeLab starts the lab and returns it once both agents are
// healthy on edge-1 with edge-2 standby; comment names the enrollment
// token. On failure the test prints both agents' logs.
func startTwoEdgeLab(t *testing.T, comment string) *twoEdgeLab {
	t.Helper()
	l := &twoEdgeLab{url: etcdtest.Start(t), connLog: new(lockedBuffer), cliLog: new(lockedBuffer), server: netip.MustParseAddr("192.0.2.10")}
	var err error
	if l.key, err = cluster.NewKey(); err != nil {
		t.Fatal(err)
	}
	l.e1 = startClusterEdge(t, l.url, l.key, "edge-1") // first: creates the cluster's secrets
	l.e2 = startClusterEdge(t, l.url, l.key, "edge-2")
	ctx := context.Background()
	tunnelToken, enrollToken := setUpSiteA(t, l.e1.admin, comment)
	// Tokens and configurations name both edges once both are registered;
	// a configuration read before that is stale as soon as they are (the
	// API's edge list is renewed at every change of the edges' liveness).
	waitFor(t, "both edges are healthy", 10*time.Second, func() (bool, string) {
		edges, err := l.e1.admin.Edges(ctx)
		n := 0
		for _, e := range edges {
			if e.Healthy && e.Heartbeat.IsValid() {
				n++
			}
		}
		return n == 2, fmt.Sprintf("%+v %v", edges, err)
	})

	l.conn = newInProcessAgent(t, "sy0")
	l.conn.run(t, func(ctx context.Context) error {
		return agent.RunConnector(ctx, agent.ConnectorConfig{Token: tunnelToken, StateDir: l.conn.stateDir, TunName: "sy0", Seams: l.conn.seams(),
			Log: slog.New(slog.NewTextHandler(l.connLog, nil))})
	})
	l.cli = newInProcessAgent(t, "sy1")
	l.cli.run(t, func(ctx context.Context) error {
		return agent.RunClient(ctx, agent.ClientConfig{Token: enrollToken, StateDir: l.cli.stateDir, TunName: "sy1", Name: "laptop", Seams: l.cli.seams(),
			Log: slog.New(slog.NewTextHandler(l.cliLog, nil))})
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("connector's log:\n%s\nclient's log:\n%s", l.connLog.String(), l.cliLog.String())
		}
	})
	l.cs, l.cc = localapi.NewClient("connector", l.conn.stateDir), localapi.NewClient("client", l.cli.stateDir)
	waitFor(t, "the connector is on edge-1, edge-2 standby, both answering", 20*time.Second, onEdges(l.cs, "edge-1", "edge-2"))
	waitFor(t, "the client is on edge-1, edge-2 standby, both answering", 20*time.Second, onEdges(l.cc, "edge-1", "edge-2"))
	if devs, err := l.e1.admin.ListDevices(ctx, false); err == nil && len(devs) == 1 {
		l.laptop = devs[0].IP
	} else {
		t.Fatalf("devices: %+v, %v", devs, err)
	}
	return l
}

// toSite sends a UDP packet with payload from the laptop's port to the
// server through the cluster, and returns it as the connector's TUN wrote it.
func (l *twoEdgeLab) toSite(t *testing.T, what string, port uint16, payload string, within time.Duration) []byte {
	t.Helper()
	return exchange(t, what, l.cli, l.conn,
		udpPacket(netip.AddrPortFrom(l.laptop, port), netip.AddrPortFrom(l.server, 7000), payload), within)
}

// toClient sends a UDP packet with payload from the server to the laptop's
// port, and returns it as the client's TUN wrote it.
func (l *twoEdgeLab) toClient(t *testing.T, what string, port uint16, payload string, within time.Duration) []byte {
	t.Helper()
	return exchange(t, what, l.conn, l.cli,
		udpPacket(netip.AddrPortFrom(l.server, 7000), netip.AddrPortFrom(l.laptop, port), payload), within)
}

// replicaOn reports whether edge-2 lists site-a's replica once: active on
// active, its standby session on standby ("" for none), with the host name
// its agent reported.
func (l *twoEdgeLab) replicaOn(active, standby string) func() (bool, string) {
	return func() (bool, string) {
		ts, err := l.e2.admin.ListTunnels(context.Background(), model.TunnelFilter{Name: "site-a"})
		if err != nil || len(ts) != 1 || len(ts[0].Connections) != 1 {
			return false, fmt.Sprintf("%+v %v", ts, err)
		}
		c := ts[0].Connections[0]
		var want []string
		if standby != "" {
			want = []string{standby}
		}
		return c.Edge == active && c.State == model.ReplicaActive && slices.Equal(c.Standby, want) && c.Hostname != "", fmt.Sprintf("%+v", c)
	}
}

// logsSay fails the test unless both agents' logs hold every one of lines;
// what says what they tell.
func (l *twoEdgeLab) logsSay(t *testing.T, what string, lines ...string) {
	t.Helper()
	for name, log := range map[string]*lockedBuffer{"connector": l.connLog, "client": l.cliLog} {
		s := log.String()
		for _, line := range lines {
			if !strings.Contains(s, line) {
				t.Errorf("the %s's log does not say %s (no %q)", name, what, line) // the logs are printed at the end
				break
			}
		}
	}
}

// clusterEdge is an edge run in process on a shared etcd.
type clusterEdge struct {
	admin *client.Client
	stop  context.CancelFunc
	errc  chan error
}

// startClusterEdge runs the edge called name on etcd at url, and returns
// it once its API answers; stop (or the test's end) ends it.
func startClusterEdge(t *testing.T, url string, key cluster.Key, name string) *clusterEdge {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	e := &clusterEdge{stop: cancel, errc: make(chan error, 1)}
	go func() {
		e.errc <- edge.Run(ctx, edge.Config{DataDir: dir, APIListen: "127.0.0.1:0", WGListen: "127.0.0.1:0", MASQUEListen: "",
			Etcd: &edge.EtcdConfig{Endpoints: []string{url}, ClusterKey: key}, EdgeName: name, Version: "test",
			Log: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-e.errc; err != nil {
			t.Errorf("%s: %v", name, err)
		}
		e.errc <- nil
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-e.errc:
			e.errc <- err
			t.Fatalf("%s: %v", name, err)
		default:
		}
		cfg, err := client.LoadConfig(filepath.Join(dir, client.ConfigFile))
		if err == nil {
			if e.admin, err = client.New(cfg.API, cfg.Token, []byte(cfg.CA)); err == nil {
				if _, err = e.admin.ListVNets(ctx, model.VNetFilter{}); err == nil {
					return e
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not serve its API within 30 s: %v", name, err)
		}
	}
}

// shutdown cancels the edge called name (as SIGTERM does) and waits until
// its Run returns, failing the test if that returned an error.
func (e *clusterEdge) shutdown(t *testing.T, name string) {
	t.Helper()
	e.stop()
	if err := <-e.errc; err != nil {
		t.Errorf("%s: %v", name, err)
	}
	e.errc <- nil // for the cleanup
}

// waitFor polls cond every 20 ms until it holds, and fails after within.
func waitFor(t *testing.T, what string, within time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v; last %s", what, within, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// onEdges reports whether the agent is healthy with its traffic on active
// and its one standby session on standby.
func onEdges(c *localapi.Client, active, standby string) func() (bool, string) {
	return func() (bool, string) {
		st, err := c.Status(context.Background())
		return err == nil && st.Healthy && st.Edge == active && slices.Equal(st.Standby, []string{standby}), fmt.Sprintf("%+v %v", st, err)
	}
}

// onActive reports whether the agent's traffic goes to edge.
func onActive(c *localapi.Client, edge string) func() (bool, string) {
	return func() (bool, string) {
		st, err := c.Status(context.Background())
		return err == nil && st.Edge == edge, fmt.Sprintf("%+v %v", st, err)
	}
}

// lockedBuffer is a strings.Builder for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
