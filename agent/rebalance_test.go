package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/cluster"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/etcdtest"
)

// TestAgentsReturnToTheirHomeEdge: a connector and a client whose home edge
// is edge-1 (it made their tokens) move to edge-2 when edge-1 stops, and
// back to edge-1 when it runs again: its registration wakes the agents'
// configuration polls, its heartbeats are answered for the hold, and each
// agent swaps its peers back. A ping-like stream (a packet every 10 ms from
// the client to the site, echoed back) runs through the return; the test
// prints how many went missing and bounds it loosely.
func TestAgentsReturnToTheirHomeEdge(t *testing.T) {
	url := etcdtest.Start(t)
	key, err := cluster.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	e1 := startClusterEdge(t, url, key, "edge-1")
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
	et, err := admin.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: "home edge"})
	if err != nil {
		t.Fatal(err)
	}
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
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("connector's log:\n%s\nclient's log:\n%s", connLog.String(), cliLog.String())
		}
	})
	cs, cc := localapi.NewClient("connector", conn.stateDir), localapi.NewClient("client", cli.stateDir)
	paired := func(c *localapi.Client, active, standby string) func() (bool, string) {
		return func() (bool, string) {
			st, err := c.Status(ctx)
			return err == nil && st.Healthy && st.Edge == active && slices.Equal(st.Standby, []string{standby}), fmt.Sprintf("%+v %v", st, err)
		}
	}
	waitFor(t, "the connector is on edge-1, edge-2 standby", 20*time.Second, paired(cs, "edge-1", "edge-2"))
	waitFor(t, "the client is on edge-1, edge-2 standby", 20*time.Second, paired(cc, "edge-1", "edge-2"))
	var laptop netip.Addr
	if devs, err := admin.ListDevices(ctx, false); err == nil && len(devs) == 1 {
		laptop = devs[0].IP
	} else {
		t.Fatalf("devices: %+v, %v", devs, err)
	}
	server := netip.MustParseAddr("192.0.2.10")
	exchange(t, "client to site through edge-1", cli, conn,
		udpPacket(netip.AddrPortFrom(laptop, 40000), netip.AddrPortFrom(server, 7000), "before"), 10*time.Second)

	// Edge 1 stops: the agents move to edge 2.
	e1.stop()
	if err := <-e1.errc; err != nil {
		t.Errorf("edge-1: %v", err)
	}
	e1.errc <- nil
	waitFor(t, "the connector is on edge-2", 10*time.Second, onActive(cs, "edge-2"))
	waitFor(t, "the client is on edge-2", 10*time.Second, onActive(cc, "edge-2"))
	exchange(t, "client to site through edge-2", cli, conn,
		udpPacket(netip.AddrPortFrom(laptop, 40001), netip.AddrPortFrom(server, 7000), "edge-2"), 10*time.Second)

	// The stream: the client pings the site every 10 ms, the site echoes.
	ping := startPingStream(cli, conn, netip.AddrPortFrom(laptop, 40002), netip.AddrPortFrom(server, 7000))
	time.Sleep(300 * time.Millisecond)
	if got := ping.received.Load(); got == 0 {
		ping.stop()
		t.Fatal("no echo came back through edge-2 before edge-1's return")
	}

	// Edge 1 runs again (same name, so the same key and addresses of its
	// own; a new WireGuard port): both agents return to it.
	restart := time.Now()
	startClusterEdge(t, url, key, "edge-1")
	connBack := waitFor(t, "the connector is back on edge-1", 20*time.Second, paired(cs, "edge-1", "edge-2"))
	cliBack := time.Since(restart)
	waitFor(t, "the client is back on edge-1", 20*time.Second, paired(cc, "edge-1", "edge-2"))
	cliBack = max(cliBack, time.Since(restart))
	time.Sleep(time.Second) // the stream keeps running on edge-1
	sent, received := ping.stop()
	lost := sent - received
	t.Logf("edge-1 ran again: the connector was back on it %v later, the client by %v; of %d pings (every 10 ms) across the return %d were lost (%v)",
		connBack.Round(time.Millisecond), cliBack.Round(time.Millisecond), sent, lost, time.Duration(lost)*10*time.Millisecond)
	if connBack > 15*time.Second || cliBack > 15*time.Second {
		t.Errorf("the agents took %v and %v to return to edge-1", connBack, cliBack)
	}
	if lost > 20 {
		t.Errorf("%d of %d pings lost across the return to edge-1, want at most 20 (200 ms)", lost, sent)
	}
	for what, log := range map[string]*lockedBuffer{"connector": &connLog, "client": &cliLog} {
		if l := log.String(); !strings.Contains(l, "the traffic moved back to it") || !strings.Contains(l, "from=edge-2 to=edge-1") {
			t.Errorf("the %s's log does not say it moved its traffic back from edge-2 to edge-1", what)
		}
	}
	// Both directions through edge-1 now, and the registry agrees.
	exchange(t, "client to site through edge-1 again", cli, conn,
		udpPacket(netip.AddrPortFrom(laptop, 40003), netip.AddrPortFrom(server, 7000), "home!!"), 5*time.Second)
	exchange(t, "site to client through edge-1 again", conn, cli,
		udpPacket(netip.AddrPortFrom(server, 7000), netip.AddrPortFrom(laptop, 40003), "reply!"), 5*time.Second)
	waitFor(t, "the registry shows the replica active on edge-1", 10*time.Second, func() (bool, string) {
		ts, err := e2.admin.ListTunnels(ctx, model.TunnelFilter{Name: "site-a"})
		if err != nil || len(ts) != 1 {
			return false, fmt.Sprintf("%+v %v", ts, err)
		}
		if len(ts[0].Connections) != 1 {
			return false, fmt.Sprintf("%+v", ts[0].Connections)
		}
		c := ts[0].Connections[0]
		return c.Edge == "edge-1" && c.State == model.ReplicaActive && slices.Equal(c.Standby, []string{"edge-2"}), fmt.Sprintf("%+v", c)
	})
}

// pingStream writes a numbered UDP packet into a client's TUN every 10 ms;
// the site's side echoes each one that comes out of the connector's TUN,
// and the stream counts the echoes that come back out of the client's.
type pingStream struct {
	sent, received atomic.Int64
	quitSend, quit chan struct{}
	wg             sync.WaitGroup
}

func startPingStream(cli, conn *inProcessAgent, from, to netip.AddrPort) *pingStream {
	p := &pingStream{quitSend: make(chan struct{}), quit: make(chan struct{})}
	p.wg.Add(3)
	go func() { // the client pings
		defer p.wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.quitSend:
				return
			case <-tick.C:
			}
			select {
			case cli.tun.Outbound <- udpPacket(from, to, fmt.Sprintf("ping%06d", i)):
				p.sent.Add(1)
			case <-time.After(10 * time.Millisecond): // the device did not read: a lost ping too
				p.sent.Add(1)
			}
		}
	}()
	go func() { // the site echoes
		defer p.wg.Done()
		for {
			select {
			case <-p.quit:
				return
			case pkt := <-conn.in:
				if len(pkt) < 28 || !strings.HasPrefix(string(pkt[28:]), "ping") {
					continue
				}
				reply := udpPacket(to, from, "pong"+string(pkt[32:]))
				select {
				case conn.tun.Outbound <- reply:
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}()
	go func() { // the client counts the echoes, once each
		defer p.wg.Done()
		seen := map[string]bool{}
		for {
			select {
			case <-p.quit:
				return
			case pkt := <-cli.in:
				if len(pkt) < 28 || !strings.HasPrefix(string(pkt[28:]), "pong") || seen[string(pkt[28:])] {
					continue
				}
				seen[string(pkt[28:])] = true
				p.received.Add(1)
			}
		}
	}()
	return p
}

// stop ends the stream, giving the last pings 300 ms to come back, and
// returns how many were sent and echoed.
func (p *pingStream) stop() (sent, received int64) {
	close(p.quitSend)
	time.Sleep(300 * time.Millisecond) // in flight
	close(p.quit)
	p.wg.Wait()
	return p.sent.Load(), p.received.Load()
}
