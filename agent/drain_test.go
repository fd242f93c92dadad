package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/model"
)

// pinger sends numbered UDP pings from the client's TUN to a site address
// every interval; the connector answers each one out of its TUN, and the
// pinger records which pongs came back.
type pinger struct {
	interval time.Duration
	mu       sync.Mutex
	sent     []time.Time       // by sequence number
	got      map[int]time.Time // pongs by sequence number
}

// run pings until ctx ends, from laptop to server through cli and conn.
func (p *pinger) run(ctx context.Context, cli, conn *inProcessAgent, laptop, server netip.Addr) {
	var wg sync.WaitGroup
	defer wg.Wait()
	from, to := netip.AddrPortFrom(laptop, 41000), netip.AddrPortFrom(server, 7000)
	wg.Add(2)
	go func() { // the site's server: a pong for each ping
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case pkt := <-conn.in:
				if len(pkt) > 28 && strings.HasPrefix(string(pkt[28:]), "ping ") {
					pong := udpPacket(to, from, "pong "+string(pkt[33:]))
					select {
					case conn.tun.Outbound <- pong:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	go func() { // the client: collect the pongs
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case pkt := <-cli.in:
				if len(pkt) > 28 && strings.HasPrefix(string(pkt[28:]), "pong ") {
					if n, err := strconv.Atoi(string(pkt[33:])); err == nil {
						p.mu.Lock()
						p.got[n] = time.Now()
						p.mu.Unlock()
					}
				}
			}
		}
	}()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		n := len(p.sent)
		p.sent = append(p.sent, time.Now())
		p.mu.Unlock()
		select {
		case cli.tun.Outbound <- udpPacket(from, to, fmt.Sprintf("ping %06d", n)):
		case <-ctx.Done():
			return
		}
	}
}

// losses returns how many pings sent from since until until got no pong,
// how many were sent, and the longest time between two pongs that came back.
func (p *pinger) losses(since, until time.Time) (lost, sent int, gap time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for n, at := range p.sent {
		if at.Before(since) || at.After(until) {
			continue
		}
		sent++
		got, ok := p.got[n]
		if !ok {
			lost++
			continue
		}
		if !last.IsZero() && got.Sub(last) > gap {
			gap = got.Sub(last)
		}
		last = got
	}
	return lost, sent, gap
}

// TestCleanStopDrainsTheEdge: two edges of a cluster, a connector and a
// client each holding sessions to both, active on edge-1, and a ping every
// 5 ms from the client to the site and back. Edge-1's context is cancelled
// (SIGTERM): its heartbeat replies say it drains, both agents move their
// traffic to edge-2 at once (their logs say why), and edge-1 withdraws its
// registration and sessions (the registry shows none of edge-1's at once,
// not after its 2 s lease) and stops, within its drain bound. The pings
// lost across the event are counted and printed: the goal is under 100 ms
// of them; the test asserts under 200 ms.
func TestCleanStopDrainsTheEdge(t *testing.T) {
	l := startTwoEdgeLab(t, "drain")
	ctx := context.Background()
	cli, conn, laptop, server := l.cli, l.conn, l.laptop, l.server
	survivor := l.e2.admin
	sessionsOn := func(edge string) int {
		edges, _ := survivor.Edges(ctx)
		for _, e := range edges {
			if e.Name == edge {
				return e.Sessions
			}
		}
		return 0
	}
	waitFor(t, "each edge holds both agents' sessions", 10*time.Second, func() (bool, string) {
		return sessionsOn("edge-1") == 2 && sessionsOn("edge-2") == 2, fmt.Sprintf("%d %d", sessionsOn("edge-1"), sessionsOn("edge-2"))
	})
	l.toSite(t, "client to site through edge-1", 40000, "before", 10*time.Second)
	waitFor(t, "edge-2 lists the replica active on edge-1", 10*time.Second, func() (bool, string) {
		ts, err := survivor.ListTunnels(ctx, model.TunnelFilter{Name: "site-a"})
		if err != nil || len(ts) != 1 {
			return false, fmt.Sprintf("%+v %v", ts, err)
		}
		return slices.ContainsFunc(ts[0].Connections, func(c model.Connection) bool {
			return c.Edge == "edge-1" && c.State == model.ReplicaActive
		}), fmt.Sprintf("%+v", ts[0].Connections)
	})

	const interval = 5 * time.Millisecond
	p := &pinger{interval: interval, got: map[int]time.Time{}}
	pingCtx, stopPing := context.WithCancel(ctx)
	pinged := make(chan struct{})
	go func() { defer close(pinged); p.run(pingCtx, cli, conn, laptop, server) }()
	defer func() { stopPing(); <-pinged }()
	waitFor(t, "a pong", 5*time.Second, func() (bool, string) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.got) > 0, fmt.Sprintf("%d pings sent", len(p.sent))
	})
	// The baseline: a steady half second (at most 10% lost), which a busy
	// machine may take a few seconds to give while the lab settles.
	waitFor(t, "a steady ping stream before the stop", 10*time.Second, func() (bool, string) {
		now := time.Now()
		lost, sent, _ := p.losses(now.Add(-600*time.Millisecond), now.Add(-100*time.Millisecond))
		return sent >= 20 && lost <= sent/10, fmt.Sprintf("%d of %d pings got no pong in the last half second", lost, sent)
	})

	// SIGTERM: edge-1's context ends.
	stopAt := time.Now()
	l.e1.shutdown(t, "edge-1")
	stopTook := time.Since(stopAt)
	// Withdrawn, not expired: the registry's watch brings the revoked
	// lease in milliseconds, long before the lease (2 s) could run out.
	withdrawn := true
	for deadline := time.Now().Add(300 * time.Millisecond); sessionsOn("edge-1") != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			withdrawn = false
			break
		}
	}
	time.Sleep(time.Second) // pings on through edge-2
	stopPing()
	<-pinged
	lost, sent, gap := p.losses(stopAt.Add(-100*time.Millisecond), time.Now())
	t.Logf("clean stop of edge-1: its Run returned after %v; %d of %d pings (one every %v) lost, %v of traffic; longest time between two pongs %v",
		stopTook.Round(time.Millisecond), lost, sent, interval, (time.Duration(lost) * interval), gap.Round(time.Millisecond))
	if loss := time.Duration(lost) * interval; loss >= 200*time.Millisecond {
		t.Errorf("the drain lost %v of pings (%d), want under 200 ms (goal: 100 ms; without the drain about 300 ms go, until the agents learn of the stop from their configurations)", loss, lost)
	}
	if stopTook > 2500*time.Millisecond {
		t.Errorf("edge-1 took %v to stop, more than its drain bound and the API's shutdown", stopTook)
	}
	if !withdrawn {
		t.Errorf("edge-1's sessions are still in the registry 300 ms after its Run returned (%d): not withdrawn", sessionsOn("edge-1"))
	}
	for _, c := range []*localapi.Client{l.cs, l.cc} {
		if st, err := c.Status(ctx); err != nil || st.Edge != "edge-2" {
			t.Errorf("after the drain an agent is on %+v, %v; want edge-2", st, err)
		}
	}
	l.logsSay(t, "it moved its traffic from the draining edge-1 to edge-2", "the active edge is stopping; the traffic moved to the standby edge", "from=edge-1 to=edge-2")
	if edges, err := survivor.Edges(ctx); err != nil || slices.ContainsFunc(edges, func(e model.Edge) bool { return e.Name == "edge-1" && e.Healthy }) {
		t.Errorf("edge-1 is still registered as healthy after it stopped: %+v, %v", edges, err)
	}
}
