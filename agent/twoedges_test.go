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

// TestAgentsOnTwoEdges runs two edges of a cluster on one etcd, and a
// connector and a client in process that keep WireGuard sessions to both:
// heartbeats reach both edges (each shows both sessions up), the registry
// shows the replica active on one edge and standby on the other, and a
// packet from the client reaches the site with its true source. Stopping the
// active edge moves both agents' traffic to the other edge (their AllowedIPs
// swap), and packets flow again, both ways, through the survivor.
func TestAgentsOnTwoEdges(t *testing.T) {
	url := etcdtest.Start(t)
	key, err := cluster.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	e1 := startClusterEdge(t, url, key, "edge-1") // first: creates the cluster's secrets
	e2 := startClusterEdge(t, url, key, "edge-2")
	ctx := context.Background()
	admin := e1.admin
	if _, err := admin.CreateVNet(ctx, model.NewVNet{Name: "vnet-a", IsDefault: true}); err != nil {
		t.Fatal(err)
	}
	tunnel, err := admin.CreateTunnel(ctx, "site-a")
	if err != nil {
		t.Fatal(err)
	}
	site := netip.MustParsePrefix("192.0.2.0/24")
	if _, err := admin.AddRoute(ctx, model.NewRoute{Network: site, Tunnel: "site-a", VNet: "vnet-a"}); err != nil {
		t.Fatal(err)
	}
	et, err := admin.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: "two edges"})
	if err != nil {
		t.Fatal(err)
	}
	// Tokens and configurations name both edges once both are registered.
	waitFor(t, "both edges are healthy", 10*time.Second, func() (bool, string) {
		edges, err := admin.Edges(ctx)
		n := 0
		for _, e := range edges {
			if e.Healthy && e.Heartbeat.IsValid() {
				n++
			}
		}
		return n == 2, fmt.Sprintf("%+v %v", edges, err)
	})
	time.Sleep(2100 * time.Millisecond) // the API's cache of the edge list (peerAPIsTTL)

	var connLog, cliLog lockedBuffer
	conn := newInProcessAgent(t, "sy0")
	conn.run(t, func(ctx context.Context) error {
		return agent.RunConnector(ctx, agent.ConnectorConfig{Token: tunnel.Token, StateDir: conn.stateDir, TunName: "sy0", Seams: conn.seams(),
			Log: slog.New(slog.NewTextHandler(&connLog, nil))})
	})
	cli := newInProcessAgent(t, "sy1")
	cli.run(t, func(ctx context.Context) error {
		return agent.RunClient(ctx, agent.ClientConfig{Token: et.Token, StateDir: cli.stateDir, TunName: "sy1", Name: "laptop", Seams: cli.seams(),
			Log: slog.New(slog.NewTextHandler(&cliLog, nil))})
	})
	cs, cc := localapi.NewClient("connector", conn.stateDir), localapi.NewClient("client", cli.stateDir)
	onEdges := func(c *localapi.Client, active, standby string) func() (bool, string) {
		return func() (bool, string) {
			st, err := c.Status(ctx)
			return err == nil && st.Healthy && st.Edge == active && slices.Equal(st.Standby, []string{standby}), fmt.Sprintf("%+v %v", st, err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("connector's log:\n%s\nclient's log:\n%s", connLog.String(), cliLog.String())
		}
	})
	waitFor(t, "the connector is on edge-1, edge-2 standby, both answering", 20*time.Second, onEdges(cs, "edge-1", "edge-2"))
	waitFor(t, "the client is on edge-1, edge-2 standby, both answering", 20*time.Second, onEdges(cc, "edge-1", "edge-2"))

	// Both edges hold both sessions, and the registry says where the
	// replica is active.
	waitFor(t, "each edge holds both agents' sessions", 10*time.Second, func() (bool, string) {
		edges, err := e2.admin.Edges(ctx)
		return err == nil && len(edges) == 2 && edges[0].Sessions == 2 && edges[1].Sessions == 2, fmt.Sprintf("%+v %v", edges, err)
	})
	// One entry for the replica, from either edge: the edge that carries
	// its traffic, the one that holds its standby session, and the host
	// name its agent reported.
	replicaOn := func(active, standby string) func() (bool, string) {
		return func() (bool, string) {
			ts, err := e2.admin.ListTunnels(ctx, model.TunnelFilter{Name: "site-a"})
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
	waitFor(t, "the registry shows the replica active on edge-1, standby on edge-2", 10*time.Second, replicaOn("edge-1", "edge-2"))
	if rt, err := e2.admin.GetRoute(ctx, "vnet-a", netip.MustParseAddr("192.0.2.10")); err != nil || rt.Edge != "edge-1" {
		t.Errorf("route ip get 192.0.2.10 through edge-2: %+v, %v; want it carried by edge-1", rt, err)
	}
	waitFor(t, "device list shows the laptop on edge-1, standby on edge-2", 10*time.Second, func() (bool, string) {
		devs, err := e2.admin.ListDevices(ctx, false)
		return err == nil && len(devs) == 1 && devs[0].Edge == "edge-1" && slices.Equal(devs[0].StandbyEdges, []string{"edge-2"}), fmt.Sprintf("%+v %v", devs, err)
	})

	var laptop netip.Addr
	if devs, err := admin.ListDevices(ctx, false); err == nil && len(devs) == 1 {
		laptop = devs[0].IP
	} else {
		t.Fatalf("devices: %+v, %v", devs, err)
	}
	server := netip.MustParseAddr("192.0.2.10")
	out := exchange(t, "client to site through edge-1", cli, conn,
		udpPacket(netip.AddrPortFrom(laptop, 40000), netip.AddrPortFrom(server, 7000), "before"), 10*time.Second)
	if src, dst := addrs(out); src != laptop || dst != server {
		t.Fatalf("the connector's TUN got %v → %v, want %v → %v (the true source)", src, dst, laptop, server)
	}

	// Edge 1's machine dies: nothing reaches the agents from its WireGuard
	// port any more, nor the other way, while its registration and
	// sessions stay listed until their leases expire (as after a SIGKILL).
	var wg1 string
	edges, err := admin.Edges(ctx)
	for _, e := range edges {
		if e.Name == "edge-1" {
			wg1 = e.WireGuard
		}
	}
	if wg1 == "" {
		t.Fatalf("edge-1's WireGuard address: %+v, %v", edges, err)
	}
	died := time.Now()
	conn.bind.blocked.Store(&wg1)
	cli.bind.blocked.Store(&wg1)
	connMoved := waitFor(t, "the connector moves to edge-2", 5*time.Second, onActive(cs, "edge-2"))
	waitFor(t, "the client moves to edge-2", 5*time.Second, onActive(cc, "edge-2"))
	cliMoved := time.Since(died)
	out = exchange(t, "client to site through edge-2", cli, conn,
		udpPacket(netip.AddrPortFrom(laptop, 40001), netip.AddrPortFrom(server, 7000), "after!"), 5*time.Second)
	flowing := time.Since(died)
	if src, dst := addrs(out); src != laptop || dst != server {
		t.Fatalf("after the failover the connector's TUN got %v → %v, want %v → %v", src, dst, laptop, server)
	}
	back := exchange(t, "site to client through edge-2", conn, cli,
		udpPacket(netip.AddrPortFrom(server, 7000), netip.AddrPortFrom(laptop, 40001), "reply!"), 5*time.Second)
	if src, dst := addrs(back); src != server || dst != laptop {
		t.Fatalf("the client's TUN got %v → %v, want %v → %v", src, dst, server, laptop)
	}
	t.Logf("edge-1 went silent: the connector's traffic moved to edge-2 after %v, the client's by %v; a packet crossed edge-2 %v after (heartbeats every %v, dead after %d missed)",
		connMoved.Round(time.Millisecond), cliMoved.Round(time.Millisecond), flowing.Round(time.Millisecond), 100*time.Millisecond, 5)
	if connMoved > 5*time.Second || cliMoved > 5*time.Second {
		t.Errorf("the failover took %v and %v", connMoved, cliMoved)
	}
	for what, log := range map[string]*lockedBuffer{"connector": &connLog, "client": &cliLog} {
		if l := log.String(); !strings.Contains(l, "the traffic moved to the standby edge") || !strings.Contains(l, "from=edge-1 to=edge-2") {
			t.Errorf("the %s's log does not say it moved its traffic from edge-1 to edge-2:\n%s", what, l)
		}
	}
	waitFor(t, "edge-2 lists the replica as active", 5*time.Second, func() (bool, string) {
		ok, state := replicaOn("edge-1", "edge-2")() // edge-1's view, until it goes
		if ok {
			return false, state
		}
		return strings.Contains(state, "State:active") && strings.Contains(state, "Edge:edge-2"), state
	})

	// Then edge 1 stops for good (its Run ends: registration and sessions
	// withdrawn): the configurations name edge 2 alone, and the agents stay
	// on their session with it.
	stopAt := time.Now()
	e1.stop()
	if err := <-e1.errc; err != nil {
		t.Errorf("edge-1: %v", err)
	}
	e1.errc <- nil
	t.Logf("edge-1's Run returned %v after it was cancelled", time.Since(stopAt).Round(time.Millisecond))
	waitFor(t, "the configurations name edge-2 alone", 10*time.Second, func() (bool, string) {
		st, err := cs.Status(ctx)
		return err == nil && st.Edge == "edge-2" && len(st.Standby) == 0 && strings.Contains(connLog.String(), "msg=edges sessions=1"), fmt.Sprintf("%+v %v", st, err)
	})
	exchange(t, "client to site through edge-2 alone", cli, conn,
		udpPacket(netip.AddrPortFrom(laptop, 40002), netip.AddrPortFrom(server, 7000), "alone!"), 5*time.Second)
	waitFor(t, "the registry shows the replica active on edge-2 alone", 10*time.Second, replicaOn("edge-2", ""))
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
