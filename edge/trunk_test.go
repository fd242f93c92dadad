package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// The trunk lab's sites: A behind a connector on edge 1, B behind one on
// edge 2, both in the default vnet.
var (
	trunkSiteA = netip.MustParsePrefix("192.0.2.0/24")
	trunkHostA = netip.MustParseAddr("192.0.2.10")
	trunkSiteB = netip.MustParsePrefix("198.51.100.0/24")
	trunkHostB = netip.MustParseAddr("198.51.100.10")
	trunkStray = netip.MustParseAddr("203.0.113.5") // routed to no tunnel
)

// enrollAt enrolls a connector of tunnel through the edge c (at api) and
// starts its device, whose one peer is that edge.
func enrollAt(tb testing.TB, ctx context.Context, c *client.Client, api, tunnel string) *agentPeer {
	tb.Helper()
	created, err := c.TunnelToken(ctx, tunnel)
	if err != nil {
		tb.Fatal(err)
	}
	cc, tok, err := client.NewConnector(created.Token)
	if err != nil {
		tb.Fatal(err)
	}
	if tok.API != api {
		tb.Fatalf("token for the API at %s, want %s", tok.API, api)
	}
	edgeKey, err := wireguard.ParsePublicKey(tok.EdgeKey)
	if err != nil {
		tb.Fatal(err)
	}
	_, port, err := net.SplitHostPort(tok.Endpoint)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := wireguard.GeneratePrivateKey()
	if err != nil {
		tb.Fatal(err)
	}
	pub := key.PublicKey()
	if _, err := cc.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: base64.StdEncoding.EncodeToString(pub[:]), Hostname: tunnel + "-1", Version: "test"}); err != nil {
		tb.Fatalf("enroll a connector of %s: %v", tunnel, err)
	}
	return startAgentPeer(tb, key, edgeKey, uint16(p))
}

// edgeStats reads an edge's data plane counters.
func edgeStats(tb testing.TB, ctx context.Context, c *client.Client) Stats {
	tb.Helper()
	raw, err := c.Stats(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var st Stats
	if err := json.Unmarshal(raw, &st); err != nil {
		tb.Fatalf("stats: %v", err)
	}
	return st
}

// arrivals counts the IPv4 packets an agent receives by (source,
// destination). It reads the agent's TUN from the start: a TUN nobody
// reads stalls wireguard-go, which then drops what arrives (here the edge's
// ICMP errors while the trunk comes up would fill it).
type arrivals struct {
	mu   sync.Mutex
	seen map[[2]netip.Addr]int
	poke chan struct{}
}

func watchArrivals(ctx context.Context, wg *sync.WaitGroup, a *agentPeer) *arrivals {
	r := &arrivals{seen: map[[2]netip.Addr]int{}, poke: make(chan struct{}, 1)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case pkt := <-a.tun.Inbound:
				if len(pkt) >= 20 && pkt[0]>>4 == 4 {
					r.mu.Lock()
					r.seen[[2]netip.Addr{netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))}]++
					r.mu.Unlock()
					select {
					case r.poke <- struct{}{}:
					default:
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return r
}

func (r *arrivals) has(src, dst netip.Addr) bool { return r.count(src, dst) > 0 }

// count returns how many packets from src to dst arrived.
func (r *arrivals) count(src, dst netip.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[[2]netip.Addr{src, dst}]
}

// wait reports whether a packet from src to dst arrives before ctx ends.
func (r *arrivals) wait(ctx context.Context, src, dst netip.Addr) bool {
	for !r.has(src, dst) {
		select {
		case <-r.poke:
		case <-ctx.Done():
			return r.has(src, dst)
		}
	}
	return true
}

// TestTrunkBetweenEdges: site A's connector is attached to edge 1, site B's
// to edge 2. A packet from A's site reaches B with A's true source address
// over the trunk (edge 1 counts it out, edge 2 in), B's answer reaches A the
// same way back, and a packet from an address no route gives to A does not
// reach B.
func TestTrunkBetweenEdges(t *testing.T) {
	l := &clusterLab{}
	l.startEdges(t)
	ctx, cancel := context.WithTimeout(l.ctx, 60*time.Second)
	defer cancel()
	a, _, _, atB := l.trunkSites(t, ctx)

	s1, s2 := edgeStats(t, ctx, l.edge1), edgeStats(t, ctx, l.edge2)
	if len(s1.Trunks) != 1 || s1.Trunks[0].Edge != "edge-2" || s1.Trunks[0].PacketsOut == 0 || s1.Trunks[0].PacketsIn == 0 {
		t.Fatalf("edge 1's trunks %+v, want one to edge-2 with packets both ways", s1.Trunks)
	}
	if len(s2.Trunks) != 1 || s2.Trunks[0].Edge != "edge-1" || s2.Trunks[0].PacketsIn == 0 || s2.Trunks[0].PacketsOut == 0 {
		t.Fatalf("edge 2's trunks %+v, want one to edge-1 with packets both ways", s2.Trunks)
	}

	// The flow's records: edge 1, the ingress edge, logs it naming both
	// edges; edge 2 logs its copy, marked as such.
	for _, e := range []struct {
		name string
		c    *client.Client
		copy bool
	}{{"edge 1", l.edge1, false}, {"edge 2", l.edge2, true}} {
		r := crossingRecord(t, ctx, e.c, trunkHostA, trunkHostB)
		if !slices.Equal(r.Edges, []string{"edge-1", "edge-2"}) || r.FarCopy != e.copy || r.Dest.TunnelName != "b" {
			t.Fatalf("%s logged the flow from %s to %s with edges %q, far copy %v, destination %q; want edge-1, edge-2, %v, b",
				e.name, trunkHostA, trunkHostB, r.Edges, r.FarCopy, r.Dest.TunnelName, e.copy)
		}
	}

	// From an address no route gives to A: refused at edge 1.
	spoofed := s1.Router.Dropped["spoofed"]
	for range 5 {
		a.send(t, tuntest.Ping(trunkHostB, trunkStray))
	}
	sctx, scancel := context.WithTimeout(ctx, time.Second)
	defer scancel()
	if atB.wait(sctx, trunkStray, trunkHostB) {
		t.Fatalf("a packet from the unrouted %s reached B", trunkStray)
	}
	if n := edgeStats(t, ctx, l.edge1).Router.Dropped["spoofed"]; n < spoofed+5 {
		t.Fatalf("edge 1 counted %d more spoofed packets, want 5", n-spoofed)
	}
}

// crossingRecord waits for the start record of the flow from src to dst in
// the flow log of the edge c.
func crossingRecord(tb testing.TB, ctx context.Context, c *client.Client, src, dst netip.Addr) model.FlowRecord {
	tb.Helper()
	q := url.Values{"n": {"0"}, "follow": {"false"}, "addr": {dst.String()}, "event": {model.FlowStart}}
	for {
		var got *model.FlowRecord
		err := c.Flows(ctx, q, func(r model.FlowRecord) error {
			if r.Src.Addr() == src && r.Dst.Addr() == dst {
				got = &r
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		if got != nil {
			return *got
		}
		if ctx.Err() != nil {
			tb.Fatalf("no flow from %s to %s in the edge's flow log", src, dst)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// trunkSites adds tunnels a and b, attaches a connector of a to edge 1 and
// one of b to edge 2, and returns once a packet crossed the trunk each way
// (A to B, B to A), with a watch on what each connector receives.
func (l *clusterLab) trunkSites(tb testing.TB, ctx context.Context) (a, b *agentPeer, atA, atB *arrivals) {
	tb.Helper()
	l.addTunnels(tb, ctx, labTunnel{"a", trunkSiteA}, labTunnel{"b", trunkSiteB})
	a = enrollAt(tb, ctx, l.edge1, l.apis[0], "a")
	b = enrollAt(tb, ctx, l.edge2, l.apis[1], "b")
	l.site, l.far = a, b // for close
	// Each edge's data plane knows both connectors' keys before they
	// handshake (a dropped handshake is retried only after 5 s); then ping
	// the edge to start the sessions.
	for _, c := range []*client.Client{l.edge1, l.edge2} {
		for edgeStats(tb, ctx, c).Peers != 2 {
			if ctx.Err() != nil {
				tb.Fatal("an edge's data plane does not know both connectors")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, p := range []*agentPeer{a, b} {
		p.send(tb, ping("100.96.0.1", "192.0.2.250"))
	}

	atA, atB = watchArrivals(l.ctx, &l.wg, a), watchArrivals(l.ctx, &l.wg, b)

	// A → B, resent until the sessions, the registry and the trunk are up.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	for !atB.has(trunkHostA, trunkHostB) {
		a.send(tb, tuntest.Ping(trunkHostB, trunkHostA))
		tctx, tcancel := context.WithTimeout(wctx, 20*time.Millisecond)
		atB.wait(tctx, trunkHostA, trunkHostB)
		tcancel()
		if wctx.Err() != nil {
			tb.Fatalf("no packet from %s reached %s across the edges", trunkHostA, trunkHostB)
		}
	}
	wcancel()

	// B → A: the answer crosses the trunk the other way, resent until edge 2
	// has learnt from the registry where A's session is (it may lag edge 1).
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	for !atA.has(trunkHostB, trunkHostA) {
		b.send(tb, tuntest.Ping(trunkHostA, trunkHostB))
		tctx, tcancel := context.WithTimeout(rctx, 20*time.Millisecond)
		atA.wait(tctx, trunkHostB, trunkHostA)
		tcancel()
		if rctx.Err() != nil {
			s1, s2 := edgeStats(tb, ctx, l.edge1), edgeStats(tb, ctx, l.edge2)
			tb.Fatalf("B's packet from %s did not reach A at %s; edge 1: %+v; edge 2: %+v", trunkHostB, trunkHostA, s1, s2)
		}
	}
	return a, b, atA, atB
}
