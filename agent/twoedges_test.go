package agent_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAgentsOnTwoEdges runs two edges of a cluster on one etcd, and a
// connector and a client in process that keep WireGuard sessions to both:
// heartbeats reach both edges (each shows both sessions up), the registry
// shows the replica active on one edge and standby on the other, and a
// packet from the client reaches the site with its true source. Stopping the
// active edge moves both agents' traffic to the other edge (their AllowedIPs
// swap), and packets flow again, both ways, through the survivor.
func TestAgentsOnTwoEdges(t *testing.T) {
	l := startTwoEdgeLab(t, "two edges")
	ctx := context.Background()
	e2 := l.e2.admin

	// Both edges hold both sessions, and the registry says where the
	// replica is active.
	waitFor(t, "each edge holds both agents' sessions", 10*time.Second, func() (bool, string) {
		edges, err := e2.Edges(ctx)
		return err == nil && len(edges) == 2 && edges[0].Sessions == 2 && edges[1].Sessions == 2, fmt.Sprintf("%+v %v", edges, err)
	})
	// One entry for the replica, from either edge: the edge that carries
	// its traffic, the one that holds its standby session, and the host
	// name its agent reported.
	waitFor(t, "the registry shows the replica active on edge-1, standby on edge-2", 10*time.Second, l.replicaOn("edge-1", "edge-2"))
	if rt, err := e2.GetRoute(ctx, "vnet-a", l.server); err != nil || rt.Edge != "edge-1" {
		t.Errorf("route ip get %v through edge-2: %+v, %v; want it carried by edge-1", l.server, rt, err)
	}
	waitFor(t, "device list shows the laptop on edge-1, standby on edge-2", 10*time.Second, func() (bool, string) {
		devs, err := e2.ListDevices(ctx, false)
		return err == nil && len(devs) == 1 && devs[0].Edge == "edge-1" && slices.Equal(devs[0].StandbyEdges, []string{"edge-2"}), fmt.Sprintf("%+v %v", devs, err)
	})

	laptop, server := l.laptop, l.server
	out := l.toSite(t, "client to site through edge-1", 40000, "before", 10*time.Second)
	if src, dst := addrs(out); src != laptop || dst != server {
		t.Fatalf("the connector's TUN got %v → %v, want %v → %v (the true source)", src, dst, laptop, server)
	}

	// Edge 1's machine dies: nothing reaches the agents from its WireGuard
	// port any more, nor the other way, while its registration and
	// sessions stay listed until their leases expire (as after a SIGKILL).
	var wg1 string
	edges, err := l.e1.admin.Edges(ctx)
	for _, e := range edges {
		if e.Name == "edge-1" {
			wg1 = e.WireGuard
		}
	}
	if wg1 == "" {
		t.Fatalf("edge-1's WireGuard address: %+v, %v", edges, err)
	}
	died := time.Now()
	l.conn.bind.blocked.Store(&wg1)
	l.cli.bind.blocked.Store(&wg1)
	connMoved := waitFor(t, "the connector moves to edge-2", 5*time.Second, onActive(l.cs, "edge-2"))
	waitFor(t, "the client moves to edge-2", 5*time.Second, onActive(l.cc, "edge-2"))
	cliMoved := time.Since(died)
	out = l.toSite(t, "client to site through edge-2", 40001, "after!", 5*time.Second)
	flowing := time.Since(died)
	if src, dst := addrs(out); src != laptop || dst != server {
		t.Fatalf("after the failover the connector's TUN got %v → %v, want %v → %v", src, dst, laptop, server)
	}
	back := l.toClient(t, "site to client through edge-2", 40001, "reply!", 5*time.Second)
	if src, dst := addrs(back); src != server || dst != laptop {
		t.Fatalf("the client's TUN got %v → %v, want %v → %v", src, dst, server, laptop)
	}
	t.Logf("edge-1 went silent: the connector's traffic moved to edge-2 after %v, the client's by %v; a packet crossed edge-2 %v after (heartbeats every %v, dead after %d missed)",
		connMoved.Round(time.Millisecond), cliMoved.Round(time.Millisecond), flowing.Round(time.Millisecond), 100*time.Millisecond, 5)
	if connMoved > 5*time.Second || cliMoved > 5*time.Second {
		t.Errorf("the failover took %v and %v", connMoved, cliMoved)
	}
	l.logsSay(t, "it moved its traffic from edge-1 to edge-2", "the traffic moved to the standby edge", "from=edge-1 to=edge-2")
	waitFor(t, "edge-2 lists the replica as active", 5*time.Second, func() (bool, string) {
		ok, state := l.replicaOn("edge-1", "edge-2")() // edge-1's view, until it goes
		if ok {
			return false, state
		}
		return strings.Contains(state, "State:active") && strings.Contains(state, "Edge:edge-2"), state
	})

	// Then edge 1 stops for good (its Run ends: registration and sessions
	// withdrawn): the configurations name edge 2 alone, and the agents stay
	// on their session with it.
	stopAt := time.Now()
	l.e1.shutdown(t, "edge-1")
	t.Logf("edge-1's Run returned %v after it was cancelled", time.Since(stopAt).Round(time.Millisecond))
	waitFor(t, "the configurations name edge-2 alone", 10*time.Second, func() (bool, string) {
		st, err := l.cs.Status(ctx)
		return err == nil && st.Edge == "edge-2" && len(st.Standby) == 0 && strings.Contains(l.connLog.String(), "msg=edges sessions=1"), fmt.Sprintf("%+v %v", st, err)
	})
	l.toSite(t, "client to site through edge-2 alone", 40002, "alone!", 5*time.Second)
	waitFor(t, "the registry shows the replica active on edge-2 alone", 10*time.Second, l.replicaOn("edge-2", ""))
}
