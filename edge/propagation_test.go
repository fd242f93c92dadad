package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/cluster"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// The cluster lab's addresses: the site connector's network and the host
// that sends from it, the far connector's first route, and the routes the
// writes add to the far tunnel (/32s, so that a probe to one address tells
// its route from every other).
var (
	labSite     = netip.MustParsePrefix("192.0.2.0/24")
	labSiteHost = netip.MustParseAddr("192.0.2.10")
	labFar      = netip.MustParsePrefix("203.0.113.0/25")
	labFarHost  = netip.MustParseAddr("203.0.113.1")
)

// labRoutes is how many distinct routes labRoute has.
const labRoutes = 256 + 128

// labRoute returns the i-th route a write adds: 198.51.100.0/24, then
// 203.0.113.128/25, one address at a time.
func labRoute(i int) netip.Prefix {
	if i < 256 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 32)
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(128 + i - 256)}), 32)
}

// clusterLab is two edges on one real etcd, in process, as `switchyard edge
// --store etcd://... --cluster-key FILE --edge-name NAME` runs them, and two
// connectors attached to edge 2 (wireguard-go devices, enrolled through edge
// 2's API): site, routing labSite, whose configuration long poll on edge 2
// is the agent's view; and far, routing labFar and every route the writes
// add, which receives what site sends to them through edge 2's data plane.
type clusterLab struct {
	edge1, edge2 *client.Client // admin clients
	agent        *client.Client // site's connector client (its token names edge 2)
	connector    uuid.UUID      // site's connector id
	site, far    *agentPeer

	// agentSeen is when site's long poll first returned each route in its
	// configuration; wireSeen when far first received a packet for each /32.
	agentSeen, wireSeen *sightings
	// otherEdge is the API of another edge that answered site's long poll.
	otherEdge atomic.Pointer[string]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the lab's goroutines
	etcd   *etcdtest.Cluster
	apis   []string // each edge's API URL
	// proxy1, when startEdges is asked for it (cutEdge1), is edge 1's only
	// way to etcd, which a test can cut.
	cutEdge1  bool
	proxy1    *etcdProxy
	edgeErrs  []chan error
	closeOnce sync.Once
}

// startClusterLab starts etcd, the two edges and the two connectors, and
// returns once a packet from site reaches far through edge 2. The lab stops
// when tb ends, or earlier with close.
func startClusterLab(tb testing.TB) *clusterLab {
	tb.Helper()
	l := &clusterLab{agentSeen: newSightings(), wireSeen: newSightings()}
	l.startEdges(tb)
	ctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
	defer cancel()
	l.addTunnels(tb, ctx, labTunnel{"site", labSite}, labTunnel{"far", labFar})
	site, far := l.enroll(tb, ctx, "site"), l.enroll(tb, ctx, "far")
	l.agent, l.connector = site.client, site.id
	// Start the devices once edge 2's data plane knows both keys: a
	// handshake it drops is retried only after 5 s.
	for {
		raw, err := l.edge2.Stats(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		var st Stats
		if err := json.Unmarshal(raw, &st); err != nil {
			tb.Fatalf("edge 2's stats: %v", err)
		}
		if st.Peers == 2 {
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("edge 2's data plane has %d peers, want site's and far's", st.Peers)
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.site, l.far = site.start(tb), far.start(tb)

	cfg, etag, _, err := l.agent.WatchConnectorConfig(ctx, l.connector, "", 0)
	if err != nil {
		tb.Fatalf("site's configuration from edge 2: %v", err)
	}
	if !slices.Contains(cfg.Routes, labFar) {
		tb.Fatalf("site's configuration from edge 2 routes %v, want far's %s among them", cfg.Routes, labFar)
	}
	if api := answeredBy(cfg); api != l.apis[1] {
		tb.Fatalf("site's configuration came from the edge at %q (its edge list %v), want edge 2 at %s", api, cfg.Edge.APIs, l.apis[1])
	}
	l.wg.Add(4)
	go func() { defer l.wg.Done(); l.followConfig(etag) }()
	go func() { defer l.wg.Done(); l.receive() }()
	go func() { defer l.wg.Done(); drain(l.ctx, l.site.tun.Inbound) }() // ICMP errors while a route is missing
	// Nudge both into a handshake with edge 2; keepalives keep them up.
	for _, p := range []*agentPeer{l.site, l.far} {
		p.send(tb, ping("100.96.0.1", "192.0.2.250"))
	}
	go func() { defer l.wg.Done(); l.probe(ctx, labFarHost) }()
	if _, err := l.wireSeen.wait(ctx, netip.PrefixFrom(labFarHost, 32)); err != nil {
		tb.Fatalf("site's packets to %s did not reach far through edge 2: %v", labFarHost, err)
	}
	return l
}

// startEdges starts the lab's etcd and its two edges, one after the other
// (the first creates the cluster's secrets); the lab stops when tb ends.
func (l *clusterLab) startEdges(tb testing.TB) {
	tb.Helper()
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.etcd = etcdtest.StartCluster(tb, 1)
	tb.Cleanup(func() { l.close(tb) })
	key, err := cluster.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	ep1 := l.etcd.Endpoints()
	if l.cutEdge1 {
		l.proxy1 = startEtcdProxy(tb, ep1[0])
		ep1 = []string{l.proxy1.url()}
	}
	l.edge1 = l.startEdge(tb, key, "edge-1", ep1)
	l.edge2 = l.startEdge(tb, key, "edge-2", l.etcd.Endpoints())
}

// labTunnel is a tunnel of the lab and the prefix it routes.
type labTunnel struct {
	name   string
	prefix netip.Prefix
}

// addTunnels creates the tunnels and their routes through edge 1.
func (l *clusterLab) addTunnels(tb testing.TB, ctx context.Context, tunnels ...labTunnel) {
	tb.Helper()
	for _, t := range tunnels {
		if _, err := l.edge1.CreateTunnel(ctx, t.name); err != nil {
			tb.Fatal(err)
		}
		if _, err := l.edge1.AddRoute(ctx, model.NewRoute{Network: t.prefix, Tunnel: t.name}); err != nil {
			tb.Fatal(err)
		}
	}
}

// startEdge runs an edge on the lab's etcd and returns its admin client once
// its API answers.
func (l *clusterLab) startEdge(tb testing.TB, key cluster.Key, name string, endpoints []string) *client.Client {
	tb.Helper()
	dir := tb.TempDir()
	errc := make(chan error, 1)
	l.edgeErrs = append(l.edgeErrs, errc)
	go func() {
		errc <- Run(l.ctx, Config{DataDir: dir, APIListen: "127.0.0.1:0", WGListen: "127.0.0.1:0", MASQUEListen: "127.0.0.1:0",
			Etcd: &EtcdConfig{Endpoints: endpoints, ClusterKey: key}, EdgeName: name, Version: "test"})
	}()
	// admin.json is written just before the API serves.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-errc:
			errc <- err // for close
			tb.Fatalf("%s: %v", name, err)
		default:
		}
		cfg, err := client.LoadConfig(filepath.Join(dir, client.ConfigFile))
		if err == nil {
			var c *client.Client
			if c, err = client.New(cfg.API, cfg.Token, []byte(cfg.CA)); err == nil {
				ctx, cancel := context.WithTimeout(l.ctx, 2*time.Second)
				_, err = c.ListVNets(ctx, model.VNetFilter{})
				cancel()
				if err == nil {
					l.apis = append(l.apis, cfg.API)
					return c
				}
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not serve its API: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// enrolled is a connector enrolled through edge 2 whose device has not started.
type enrolled struct {
	client  *client.Client
	id      uuid.UUID
	key     wireguard.PrivateKey
	edgeKey wireguard.PublicKey
	port    uint16 // edge 2's WireGuard port
}

// enroll enrolls a connector of tunnel through edge 2, with a token edge 2
// issued.
func (l *clusterLab) enroll(tb testing.TB, ctx context.Context, tunnel string) enrolled {
	tb.Helper()
	created, err := l.edge2.TunnelToken(ctx, tunnel)
	if err != nil {
		tb.Fatal(err)
	}
	c, tok, err := client.NewConnector(created.Token)
	if err != nil {
		tb.Fatal(err)
	}
	if tok.API != l.apis[1] {
		tb.Fatalf("edge 2 issued a token for the API at %s, want its own %s", tok.API, l.apis[1])
	}
	e := enrolled{client: c}
	if e.edgeKey, err = wireguard.ParsePublicKey(tok.EdgeKey); err != nil {
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
	e.port = uint16(p)
	if e.key, err = wireguard.GeneratePrivateKey(); err != nil {
		tb.Fatal(err)
	}
	pub := e.key.PublicKey()
	out, err := c.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: base64.StdEncoding.EncodeToString(pub[:]), Hostname: tunnel + "-1", Version: "test"})
	if err != nil {
		tb.Fatalf("enroll a connector of %s through edge 2: %v", tunnel, err)
	}
	e.id = out.Connector.ID
	return e
}

// start starts the connector's device, its one peer edge 2.
func (e enrolled) start(tb testing.TB) *agentPeer {
	tb.Helper()
	return startAgentPeer(tb, e.key, e.edgeKey, e.port)
}

// close stops the connectors, the lab's goroutines and the edges, then etcd.
func (l *clusterLab) close(tb testing.TB) {
	l.closeOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
		for _, p := range []*agentPeer{l.site, l.far} {
			if p != nil {
				p.dev.Close()
			}
		}
		for i, errc := range l.edgeErrs {
			select {
			case err := <-errc:
				if err != nil {
					tb.Errorf("edge-%d: %v", i+1, err)
				}
			case <-time.After(15 * time.Second):
				tb.Errorf("edge-%d did not stop", i+1)
			}
		}
		if l.proxy1 != nil {
			l.proxy1.close()
		}
		l.etcd.Stop(0)
	})
}

// followConfig long-polls site's configuration on edge 2 as the connector
// does, and records when each route first appears in it.
func (l *clusterLab) followConfig(etag string) {
	for l.ctx.Err() == nil {
		cfg, tag, changed, err := l.agent.WatchConnectorConfig(l.ctx, l.connector, etag, 30*time.Second)
		now := time.Now()
		if err != nil {
			time.Sleep(50 * time.Millisecond) // the agent's retry, shortened
			continue
		}
		etag = tag
		if !changed {
			continue
		}
		// The agent's client turns to another edge when one fails: only
		// edge 2's answers count.
		if api := answeredBy(cfg); api != l.apis[1] {
			l.otherEdge.Store(&api)
			continue
		}
		for _, p := range cfg.Routes {
			l.agentSeen.see(p, now)
		}
	}
}

// answeredBy returns the API of the edge that served cfg: the first of its
// cluster's edges.
func answeredBy(cfg model.ConnectorConfig) string {
	if len(cfg.Edge.APIs) == 0 {
		return ""
	}
	return cfg.Edge.APIs[0]
}

// receive records when far first receives a packet from site's host for
// each destination address.
func (l *clusterLab) receive() {
	for {
		select {
		case pkt, ok := <-l.far.tun.Inbound:
			if !ok {
				return
			}
			if len(pkt) >= 20 && pkt[0]>>4 == 4 && netip.AddrFrom4([4]byte(pkt[12:16])) == labSiteHost {
				l.wireSeen.see(netip.PrefixFrom(netip.AddrFrom4([4]byte(pkt[16:20])), 32), time.Now())
			}
		case <-l.ctx.Done():
			return
		}
	}
}

// probe sends a ping from site's host to dst every millisecond until ctx ends.
func (l *clusterLab) probe(ctx context.Context, dst netip.Addr) {
	pkt := tuntest.Ping(dst, labSiteHost)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case l.site.tun.Outbound <- pkt: // the TUN copies it out
		case <-ctx.Done():
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

func drain(ctx context.Context, c <-chan []byte) {
	for {
		select {
		case _, ok := <-c:
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// propagation is how long after a route was sent to edge 1 each part of the
// system had it.
type propagation struct {
	ack       time.Duration // edge 1 answered the write
	api       time.Duration // edge 2's API returned the route (read after the ack)
	dataplane time.Duration // far received site's packet to it through edge 2
	agent     time.Duration // site's long poll on edge 2 returned it
}

// propagateTimeout bounds one write's propagation: a hang, not a speed limit.
const propagateTimeout = 10 * time.Second

// propagate adds route rt to the far tunnel through edge 1 and waits until
// edge 2's API, edge 2's data plane and site's long poll on edge 2 have it.
func (l *clusterLab) propagate(rt netip.Prefix) (propagation, error) {
	var p propagation
	ctx, cancel := context.WithTimeout(l.ctx, propagateTimeout)
	defer cancel()
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	t0 := time.Now()
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.probe(probeCtx, rt.Addr()) }()
	added, err := l.edge1.AddRoute(ctx, model.NewRoute{Network: rt, Tunnel: "far"})
	if err != nil {
		return p, fmt.Errorf("add route %s through edge 1: %w", rt, err)
	}
	p.ack = time.Since(t0)

	for {
		got, err := l.edge2.GetRoute(ctx, "", rt.Addr())
		if err == nil && got.ID == added.ID {
			break
		}
		if err == nil || errors.Is(err, &model.Error{Kind: model.KindNotFound}) {
			err = ctx.Err() // not there yet
		}
		if err != nil {
			return p, fmt.Errorf("get route %s from edge 2: %w", rt.Addr(), err)
		}
		time.Sleep(500 * time.Microsecond)
	}
	p.api = time.Since(t0)

	at, err := l.wireSeen.wait(ctx, rt)
	if err != nil {
		return p, fmt.Errorf("site's packet to %s did not reach far through edge 2: %w", rt.Addr(), err)
	}
	p.dataplane = at.Sub(t0)
	stopProbe()
	if at, err = l.agentSeen.wait(ctx, rt); err != nil {
		if api := l.otherEdge.Load(); api != nil {
			err = fmt.Errorf("%w (the edge at %q answered it)", err, *api)
		}
		return p, fmt.Errorf("site's long poll on edge 2 did not return route %s: %w", rt, err)
	}
	p.agent = at.Sub(t0)
	return p, nil
}

// sightings records when each prefix was first seen, and wakes who waits for it.
type sightings struct {
	mu   sync.Mutex
	at   map[netip.Prefix]time.Time
	wake chan struct{} // closed and replaced at every new sighting
}

func newSightings() *sightings {
	return &sightings{at: map[netip.Prefix]time.Time{}, wake: make(chan struct{})}
}

// see records that p was seen at t, unless it was seen before.
func (s *sightings) see(p netip.Prefix, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[p]; ok {
		return
	}
	s.at[p] = t
	close(s.wake)
	s.wake = make(chan struct{})
}

// wait returns when p was first seen, waiting for it until ctx ends.
func (s *sightings) wait(ctx context.Context, p netip.Prefix) (time.Time, error) {
	for {
		s.mu.Lock()
		t, ok := s.at[p]
		wake := s.wake
		s.mu.Unlock()
		if ok {
			return t, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// TestPropagationAcrossEdges: a route written through edge 1 reaches edge
// 2's API, edge 2's data plane (a packet from one site to the new route
// arrives at the other site, source untouched) and the long poll of a
// connector attached to edge 2, which was waiting before the write. The
// bound is a hang detector, not a speed limit; BenchmarkPropagation
// measures the delays.
func TestPropagationAcrossEdges(t *testing.T) {
	l := startClusterLab(t)
	rt := labRoute(0)
	p, err := l.propagate(rt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("route %s through edge 1: acknowledged after %v; on edge 2: API %v, data plane %v, agent %v", rt, p.ack, p.api, p.dataplane, p.agent)

	// And it is the route the write made: far's, in site's configuration.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, _, _, err := l.agent.WatchConnectorConfig(ctx, l.connector, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.Routes, rt) || slices.Contains(cfg.SitePrefixes, rt) {
		t.Fatalf("site's configuration on edge 2: routes %v, site prefixes %v; want %s among the routes only", cfg.Routes, cfg.SitePrefixes, rt)
	}
}

// BenchmarkPropagation writes routes one at a time through edge 1 of a two-edge
// cluster on one embedded etcd and measures, from sending each write, until
// edge 1 acknowledges it, edge 2's API returns it, edge 2's data plane forwards
// a packet to it (probed every millisecond) and the long poll of a connector on
// edge 2 returns a configuration with it. It reports the p50 and p99 of each in
// milliseconds. An iteration is a whole run (start, benchWrites writes, stop),
// so ns/op is not reported, and -benchmem's B/op and allocs/op are the whole
// run's. BENCH_QUICK=1 writes 50.
func BenchmarkPropagation(b *testing.B) {
	writes := benchWrites
	if os.Getenv("BENCH_QUICK") == "1" {
		writes = 50
	}
	var all []propagation
	for b.Loop() {
		all = append(all, runPropagation(b, writes)...)
	}
	if len(all) == 0 {
		b.Fatal("no write was measured")
	}
	for _, m := range []struct {
		name string
		get  func(propagation) time.Duration
	}{
		{"ack", func(p propagation) time.Duration { return p.ack }},
		{"api", func(p propagation) time.Duration { return p.api }},
		{"dataplane", func(p propagation) time.Duration { return p.dataplane }},
		{"agent", func(p propagation) time.Duration { return p.agent }},
	} {
		ds := make([]time.Duration, len(all))
		for i, p := range all {
			ds[i] = m.get(p)
		}
		slices.Sort(ds)
		b.ReportMetric(ms(percentile(ds, 50)), m.name+"-p50-ms")
		b.ReportMetric(ms(percentile(ds, 99)), m.name+"-p99-ms")
	}
	b.ReportMetric(float64(len(all)), "writes")
	b.ReportMetric(0, "ns/op")
}

// benchWrites is how many routes one BenchmarkPropagation run writes, and
// benchBudget bounds the time it spends writing.
const (
	benchWrites = 300
	benchBudget = 20 * time.Second
)

// runPropagation starts a cluster lab, measures writes writes (fewer if
// benchBudget runs out), and stops the lab.
func runPropagation(b *testing.B, writes int) []propagation {
	l := startClusterLab(b)
	defer l.close(b)
	var out []propagation
	start := time.Now()
	for i := range min(writes, labRoutes) {
		if time.Since(start) > benchBudget {
			b.Logf("time budget %v spent after %d writes", benchBudget, i)
			break
		}
		p, err := l.propagate(labRoute(i))
		if err != nil {
			b.Fatalf("write %d: %v", i+1, err)
		}
		out = append(out, p)
		// Let site's long poll wait again, as it does between an operator's writes.
		time.Sleep(5 * time.Millisecond)
	}
	return out
}

// percentile returns the q-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, q int) time.Duration {
	i := (len(sorted)*q + 99) / 100
	return sorted[max(i, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestSessionRegistryAcrossEdges: the sessions that edge 2 holds are listed
// through edge 1 — per edge in the edge list, per replica in the tunnel list —
// and one that goes down leaves the list.
func TestSessionRegistryAcrossEdges(t *testing.T) {
	l := startClusterLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	perEdge := func() map[string]int {
		edges, err := l.edge1.Edges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, e := range edges {
			n[e.Name] = e.Sessions
		}
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("edge 1 lists edge 2's two sessions", func() bool { n := perEdge(); return n["edge-2"] == 2 && n["edge-1"] == 0 })

	tunnels, err := l.edge1.ListTunnels(ctx, model.TunnelFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tun := range tunnels {
		if len(tun.Connections) != 1 || tun.Connections[0].Edge != "edge-2" || tun.Connections[0].State != model.ReplicaActive {
			t.Fatalf("tunnel %s through edge 1: replicas %+v, want one, active, on edge-2", tun.Name, tun.Connections)
		}
	}

	// far's tunnel is deleted through edge 1: edge 2 drops its session, and
	// the session leaves the registry.
	if _, err := l.edge1.DeleteTunnel(ctx, "far", true); err != nil {
		t.Fatal(err)
	}
	waitFor("far's session leaves the registry", func() bool { return perEdge()["edge-2"] == 1 })
}
