package edge

import (
	"context"
	"io"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/cluster"
	"github.com/switchyard/switchyard/control/model"
)

// etcdProxy is a TCP proxy in front of an etcd member: one edge's only way
// to etcd, which cut severs (every connection closed, new ones closed as
// they come) and restore mends.
type etcdProxy struct {
	ln     net.Listener
	target string // host:port
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

// startEtcdProxy proxies loopback connections to the etcd client URL target.
func startEtcdProxy(tb testing.TB, target string) *etcdProxy {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &etcdProxy{ln: ln, target: u.Host, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	return p
}

func (p *etcdProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *etcdProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

// sever cuts the edge off from etcd (true) or lets it through again.
func (p *etcdProxy) sever(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *etcdProxy) close() {
	p.ln.Close()
	p.sever(true)
	p.wg.Wait()
}

// crossBothWays sends a packet from A to B and one from B to A, each resent
// every 50 ms, and reports how long the slower took to arrive, or fails the
// test if one did not within limit.
func crossBothWays(tb testing.TB, a, b *agentPeer, atA, atB *arrivals, limit time.Duration, what string) time.Duration {
	tb.Helper()
	start := time.Now()
	for _, d := range []struct {
		from *agentPeer
		at   *arrivals
		src  netip.Addr
		dst  netip.Addr
	}{{a, atB, trunkHostA, trunkHostB}, {b, atA, trunkHostB, trunkHostA}} {
		before := d.at.count(d.src, d.dst)
		for d.at.count(d.src, d.dst) == before {
			if time.Since(start) > limit {
				tb.Fatalf("%s: no packet from %s reached %s within %v", what, d.src, d.dst, limit)
			}
			d.from.send(tb, tuntest.Ping(d.dst, d.src))
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			for d.at.count(d.src, d.dst) == before && ctx.Err() == nil {
				select {
				case <-d.at.poke:
				case <-ctx.Done():
				}
			}
			cancel()
		}
	}
	return time.Since(start)
}

// edgeSeen returns how edge c lists the cluster's edge name.
func edgeSeen(tb testing.TB, ctx context.Context, c *client.Client, name string) (model.Edge, bool) {
	tb.Helper()
	edges, err := c.Edges(ctx)
	if err != nil {
		return model.Edge{}, false
	}
	for _, e := range edges {
		if e.Name == name {
			return e, true
		}
	}
	return model.Edge{}, false
}

// TestEdgeCutOffFromEtcd: site A's connector on edge 1, B's on edge 2; edge
// 1 loses etcd (a proxy, its only way there, is cut) while the edges still
// reach each other. Packets keep crossing the trunk both ways, past the
// expiry of edge 1's session lease and registration (edge 2 lists edge 1
// unhealthy with no sessions, yet routes to A); once edge 1 reaches etcd
// again, the registry lists its session again and the traffic still flows.
func TestEdgeCutOffFromEtcd(t *testing.T) {
	l := &clusterLab{cutEdge1: true}
	l.startEdges(t)
	ctx, cancel := context.WithTimeout(l.ctx, 90*time.Second)
	defer cancel()
	a, b, atA, atB := l.trunkSites(t, ctx)
	crossBothWays(t, a, b, atA, atB, 5*time.Second, "before the cut")

	l.proxy1.sever(true)
	cutAt := time.Now()
	// Every 100 ms a packet each way, each arriving within 500 ms, until edge
	// 2 has seen edge 1's registration lapse and its sessions go, and 2 s more.
	var lapsed time.Time
	worst := time.Duration(0)
	for lapsed.IsZero() || time.Since(lapsed) < 2*time.Second {
		if time.Since(cutAt) > 30*time.Second {
			e, _ := edgeSeen(t, ctx, l.edge2, "edge-1")
			t.Fatalf("edge 2 still lists edge 1 as %+v 30 s after the cut", e)
		}
		worst = max(worst, crossBothWays(t, a, b, atA, atB, 500*time.Millisecond, "edge 1 cut off from etcd"))
		if e, ok := edgeSeen(t, ctx, l.edge2, "edge-1"); lapsed.IsZero() && ok && !e.Healthy && e.Sessions == 0 {
			lapsed = time.Now()
			t.Logf("edge 2 lists edge 1 unhealthy, without sessions, %v after the cut", lapsed.Sub(cutAt).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if since := time.Since(cutAt); since < cluster.DefaultTTL {
		t.Fatalf("the cut lasted %v, want past the registration's lease (%v)", since, cluster.DefaultTTL)
	}
	t.Logf("while edge 1 was cut off from etcd (%v), the slowest round trip of fresh packets both ways took %v", time.Since(cutAt).Round(time.Millisecond), worst.Round(time.Millisecond))

	l.proxy1.sever(false)
	back := time.Now()
	for {
		e1, ok1 := edgeSeen(t, ctx, l.edge2, "edge-1")
		e2, ok2 := edgeSeen(t, ctx, l.edge1, "edge-2")
		if ok1 && e1.Healthy && e1.Sessions == 1 && ok2 && e2.Healthy && e2.Sessions == 1 {
			break
		}
		if time.Since(back) > 45*time.Second {
			t.Fatalf("45 s after edge 1 reached etcd again: edge 2 lists edge 1 as %+v, edge 1 lists edge 2 as %+v; want each healthy with 1 session", e1, e2)
		}
		crossBothWays(t, a, b, atA, atB, 500*time.Millisecond, "edge 1 reconnecting to etcd")
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the registry lists edge 1's session again %v after it reached etcd", time.Since(back).Round(time.Millisecond))
	crossBothWays(t, a, b, atA, atB, 500*time.Millisecond, "after edge 1 reconnected")
}
