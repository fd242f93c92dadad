package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/switchyard/switchyard/agent/localapi"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/routing/host"
	"github.com/switchyard/switchyard/transport/heartbeat"
	"github.com/switchyard/switchyard/tun"
)

// hostTunnel is what both roles set up on the host: a kernel TUN (or
// Seams.TUN) with TCP MSS clamping, the link to the edge (a wireguard-go
// device whose only peer is the edge, or MASQUE), and the reconcile of host
// routes and sysctls (through netlink, or Seams.Host). Close undoes all of it.
type hostTunnel struct {
	name     string
	ops      host.Ops
	closeOps func()
	kernel   bool // the TUN is the kernel's interface name, not Seams.TUN
	tun      sharedTUN
	link     *link
	hm       *host.Manager
	beat     *beat // the heartbeats to the edge, or to the first of a pair
	log      *slog.Logger
	events   chan struct{} // closed when the TUN's event drain ends

	// Two edges (pair.go): the edges the link's WireGuard peers are, the
	// active one's index, and a beat per edge (beats[0] is beat), aimed at
	// each edge's own address; watch swaps the active edge when its beat
	// fails and another's answers. pair is nil for one edge.
	nEdges    int             // --edges, 1 for MASQUE and auto
	hb        heartbeatConfig // for the beats of more edges
	mu        sync.Mutex
	pair      []model.ClusterEdge
	pairSince time.Time // when the agent went from one edge to a pair
	on        int
	home      string // the WireGuard key of the agent's home edge (pickEdges); failback returns to it
	beats     []*beat
	shown     atomic.Pointer[[]*beat] // beats, for takeReply on the TUN's write path
	onSwap    func(*beat)             // told the beat of the new active edge
	kick      chan struct{}           // a beat's edge began to drain: run failover now
	stop      chan struct{}
	done      sync.WaitGroup
	// applies and routes count configurations applied and the routes of the latest, for metrics.
	applies atomic.Uint64
	routes  atomic.Int64
}

// tunnelConfig is how an agent reaches the edge.
type tunnelConfig struct {
	protocol       Protocol
	wireGuardRetry time.Duration // auto: time on MASQUE before trying WireGuard again
	auth           masqueAuth
	heartbeat      heartbeatConfig
	seams          Seams
	// edges is how many edges of a cluster to keep sessions to (--edges);
	// 0 means DefaultEdges. WireGuard only: MASQUE and auto use one.
	edges int
	// pathMTU is set by openHostTunnel.
	pathMTU pathMTUConfig
	// noHostState keeps no host state file: the userspace client changes
	// nothing on the host, and must not sweep what a kernel run left.
	noHostState bool
}

// openHostTunnel first undoes what a crashed previous run left behind (our
// routes through the TUN, the sysctls recorded in the state file), then
// creates the TUN (unless tc.seams has one) and the device.
func openHostTunnel(stateDir, name string, mtu int, k key, edge model.EdgePeer, tc tunnelConfig, log *slog.Logger) (_ *hostTunnel, err error) {
	ops, closeOps, err := tc.seams.openHost()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeOps()
		}
	}()
	stateFile := filepath.Join(stateDir, "host-state.json")
	if tc.noHostState {
		stateFile = ""
	}
	if err := host.Sweep(ops, name, stateFile); err != nil {
		log.Warn("cleaning up after a previous run", "err", err)
	}
	if tc.protocol == "" { // as documented for the configs' Protocol
		tc.protocol = ProtocolWireGuard
	}
	mtu = tunMTU(tc.protocol, mtu)
	dev := tc.seams.TUN
	if dev == nil {
		if dev, err = tun.CreateKernel(name, mtu); err != nil {
			return nil, err
		}
	}
	clamped, err := tun.NewMSSClamp(dev, mtu)
	if err != nil {
		dev.Close()
		return nil, err
	}
	// The transports read views of the TUN (tunView), so nothing consumes
	// its own events: drain them until it closes.
	events := make(chan struct{})
	go func() {
		defer close(events)
		for range clamped.Events() {
		}
	}()
	shared := shareTUN(clamped)
	kernel := tc.seams.TUN == nil
	tc.pathMTU = pathMTUConfig{mtu: mtu, apply: func(tunMTU, clamp int) {
		if kernel {
			if err := tun.SetLinkMTU(name, tunMTU); err != nil {
				log.Warn("setting the TUN's MTU", "mtu", tunMTU, "err", err)
			}
		}
		if err := clamped.SetMTU(clamp); err != nil {
			log.Warn("setting the MSS clamp", "mtu", clamp, "err", err)
		}
	}}
	l, err := startLink(shared, k, tc, edge, log)
	if err != nil {
		shared.Close()
		<-events
		return nil, err
	}
	hm, err := host.NewManager(ops, stateFile)
	if err != nil {
		l.Close()
		shared.Close()
		<-events
		return nil, err
	}
	h := &hostTunnel{name: name, ops: ops, closeOps: closeOps, kernel: tc.seams.TUN == nil, tun: shared, link: l, hm: hm, log: log, events: events,
		nEdges: cmp.Or(tc.edges, DefaultEdges), stop: make(chan struct{}), kick: make(chan struct{}, 1), onSwap: func(*beat) {}}
	if tc.protocol != ProtocolWireGuard {
		h.nEdges = 1
	}
	h.hb = tc.heartbeat
	h.hb.noSocket = !h.kernel
	if p, ok := shared.(*tunPump); ok {
		h.hb.inject = p.inject
		p.setTake(h.takeReply)
	}
	h.hb.stateDir = stateDir
	if tc.protocol != ProtocolWireGuard {
		h.hb.big = bigProbes{mtu: l.probeMTU, write: l.writeProbe, shrank: l.shrank}
	}
	h.hb.drained = func() {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
	h.beat = h.newEdgeBeat()
	h.beats = []*beat{h.beat}
	h.shown.Store(&[]*beat{h.beat})
	h.done.Add(1)
	go h.watch()
	return h, nil
}

// newEdgeBeat starts the heartbeats for an edge (of a pair, the one its
// edgeKey names), whose failure restarts the handshake with that edge alone.
func (h *hostTunnel) newEdgeBeat() *beat {
	var self atomic.Pointer[beat] // set before the first call: lost waits a second
	b := newBeat(h.log.With("component", "heartbeat"), h.hb.stateDir, h.hb, func() {
		key := ""
		if b := self.Load(); b != nil {
			key = b.edgeKey()
		}
		if err := h.link.restartEdge(key); err != nil {
			h.log.Warn("restarting the handshake with the edge", "err", err)
		}
	})
	self.Store(b)
	back := func() { h.link.kickPathMTU() }
	b.back.Store(&back)
	return b
}

// addAddress assigns p to the kernel TUN; Seams.TUN has no interface of the
// host's to assign it to.
func (h *hostTunnel) addAddress(p netip.Prefix) error {
	if !h.kernel {
		return nil
	}
	return tun.AddAddress(h.name, p)
}

// heartbeatConfig says how an agent takes part in heartbeats.
type heartbeatConfig struct {
	replica   bool         // a connector replica: keep the file keepalived reads
	priority  uint8        // its rank among its tunnel's replicas
	preferred func() bool  // its host holds the site's gateway address (connector promote)
	noSocket  bool         // the TUN is not the host's (Seams.TUN): no socket; probes go through inject
	inject    func([]byte) // writes a packet into the TUN as if the host sent it; nil: no probes without a socket
	stateDir  string       // for more beats than the first
	drained   func()       // called when an edge's replies begin to say it drains
	big       bigProbes    // padded probes into the MASQUE session (shrink.go)
}

// set points the link at edge, advertising routes over MASQUE, and makes the
// host's routes into the TUN (and sysctls) match cfg; heartbeats go to one of
// the edge's addresses, from cfg.Src4 or cfg.Src6 (see heartbeatTarget), and
// the edge's IPv6 address is routed into the TUN when they go there.
//
// With two or more edges listed (and --edges 2 or more, over WireGuard),
// the link's peers are the best of them (pickEdges), and a beat per edge
// probes that edge's own address through its own peer.
func (h *hostTunnel) set(edge model.EdgePeer, overlay netip.Prefix, advertise []netip.Prefix, cfg *host.Config) error {
	cfg.Interface = h.name
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.home == "" {
		h.home = edge.PublicKey // the edge that answered the first configuration
	}
	pair := pickEdges(edge, h.nEdges, h.home)
	if pair == nil && h.pair != nil {
		// The other edges are gone: stay on the peer of the one left
		// rather than start its session again; one that comes back joins.
		pair = []model.ClusterEdge{soleEdge(edge, h.pair)}
	}
	on := keepActive(h.pair, h.on, pair)
	type aim struct{ src, dst netip.Addr }
	aims := []aim{{}}
	aims[0].src, aims[0].dst = heartbeatTarget(cfg.Src4, cfg.Src6, model.EdgeAddress(overlay), model.EdgeAddress6)
	if pair != nil {
		aims = aims[:0]
		for _, e := range pair {
			a := aim{}
			a.src, a.dst = heartbeatTarget(cfg.Src4, cfg.Src6, e.Heartbeat, e.Heartbeat6)
			if !a.dst.IsValid() { // an edge without addresses of its own: only ever the sole, active one
				a.src, a.dst = heartbeatTarget(cfg.Src4, cfg.Src6, model.EdgeAddress(overlay), model.EdgeAddress6)
			}
			aims = append(aims, a)
		}
	}
	for _, a := range aims {
		if a.dst.Is6() {
			cfg.Routes = withHost(cfg.Routes, a.dst)
		}
	}
	err := errors.Join(h.link.setEdge(edge, pair, on, advertise), h.hm.Set(cfg))
	if err != nil {
		return err
	}
	if (pair == nil) != (h.pair == nil) || len(pair) != len(h.pair) {
		h.log.Info("edges", "sessions", len(aims), "active", activeName(pair, on))
	}
	// Each edge keeps its beat (and what it knows of the edge's health)
	// across lists; the first beat, which the single edge had, goes to the
	// first edge that has none.
	beats := make([]*beat, len(aims))
	spare := slices.Clone(h.beats)
	for i := range aims {
		if pair == nil {
			break
		}
		for j, b := range spare {
			if b != nil && b.edgeKey() == pair[i].PublicKey {
				beats[i], spare[j] = b, nil
			}
		}
	}
	for i := range beats {
		for j, b := range spare {
			if beats[i] == nil && b != nil {
				beats[i], spare[j] = b, nil
			}
		}
		if beats[i] == nil {
			beats[i] = h.newEdgeBeat()
		}
		key := ""
		if pair != nil {
			key = pair[i].PublicKey
		}
		beats[i].setEdgeKey(key)
	}
	for _, b := range spare {
		if b != nil {
			b.Close()
		}
	}
	h.beats = beats
	h.beat = beats[0]
	shown := slices.Clone(h.beats) // a copy: takeReply reads it without h.mu
	h.shown.Store(&shown)
	for i, a := range aims {
		h.beats[i].aim(a.src, a.dst)
		h.beats[i].setStandby(i != on)
	}
	h.onSwap(h.beats[on])
	if h.pair == nil && pair != nil {
		h.pairSince = time.Now()
	}
	h.pair, h.on = pair, on
	h.applies.Add(1)
	h.routes.Store(int64(len(cfg.Routes)))
	return nil
}

// startGrace is how long the first edge of a new pair has to answer its
// first heartbeat before the agent turns to a standby that does: as long
// as auto waits for a WireGuard handshake (a handshake an edge dropped
// because it did not know the agent's key yet is retried within 5 s).
const startGrace = 5 * time.Second

// activeName names pair[on], the active edge; empty for one edge.
func activeName(pair []model.ClusterEdge, on int) string {
	if on < len(pair) {
		return pair[on].Name
	}
	return ""
}

// watch swaps the active edge when its heartbeats fail while another's
// answer, checking at the heartbeats' interval (and at once when an edge
// begins to drain), until Close.
func (h *hostTunnel) watch() {
	defer h.done.Done()
	t := time.NewTicker(heartbeat.DefaultInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		case <-h.kick:
		}
		h.failover()
		h.failback()
	}
}

// failbackHold is how long the home edge's heartbeats must have been
// answered without a failure before an agent moves its traffic back to it:
// long enough that an edge that is still starting, or whose path flaps,
// does not draw the traffic back and forth; short enough that the edges
// are rebalanced within seconds of an edge's return.
const failbackHold = 1500 * time.Millisecond

// failback moves the traffic back to the home edge (pickEdges) when it is
// one of the pair but not the active one, and its beat has been healthy for
// failbackHold: in one IpcSet, like failover, but with the active edge
// still answering, so that nothing is lost while the peers swap. Then it
// probes both edges at once, out of schedule: the probes' standby flags tell
// the two edges (and, through the session registry, every edge) which
// session is now active within a round trip rather than a heartbeat
// interval. It never moves to a home edge whose beat is unhealthy or failed
// within the hold.
func (h *hostTunnel) failback() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pair == nil {
		return
	}
	home := slices.IndexFunc(h.pair, func(e model.ClusterEdge) bool { return e.PublicKey == h.home })
	if home < 0 || home == h.on || h.beats[home].isDraining() || !h.beats[home].healthyFor(failbackHold, time.Now()) {
		return
	}
	h.moveLocked(home, slog.LevelInfo, "the home edge answers heartbeats again; the traffic moved back to it")
}

// moveLocked moves the traffic to pair[to] in one IpcSet, then probes both
// edges at once so that they (and through the registry every edge) learn
// which session is active, and logs why at level; h.mu is held.
func (h *hostTunnel) moveLocked(to int, level slog.Level, why string) {
	start, from := time.Now(), h.on
	if err := h.link.swap(to); err != nil {
		h.log.Error("moving the traffic to another edge", "edge", h.pair[to].Name, "err", err)
		return
	}
	h.beats[to].setStandby(false)
	h.beats[from].setStandby(true)
	h.on = to
	h.beats[to].probeNow()
	h.beats[from].probeNow()
	h.log.Log(context.Background(), level, why, "from", h.pair[from].Name, "to", h.pair[to].Name, "took", time.Since(start).Round(time.Microsecond))
	h.onSwap(h.beats[to])
}

// failover moves the traffic to the first standby edge that answers
// heartbeats (and is not draining) if the active one does not, or drains,
// in one IpcSet, then probes both edges at once so that they learn which
// session is active. An active edge that was never healthy yet gets
// startGrace from the pair's start, so that a standby whose handshake
// happens to complete first takes nothing over.
func (h *hostTunnel) failover() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pair == nil {
		return
	}
	draining := h.beats[h.on].isDraining()
	if h.beats[h.on].isHealthy() && !draining {
		return
	}
	if !draining && !h.beats[h.on].wasHealthy() && time.Since(h.pairSince) < startGrace {
		return
	}
	for i := range h.pair {
		if i == h.on || !h.beats[i].isHealthy() || h.beats[i].isDraining() {
			continue
		}
		why := "the active edge stopped answering heartbeats; the traffic moved to the standby edge"
		if draining {
			why = "the active edge is stopping; the traffic moved to the standby edge"
		}
		h.moveLocked(i, slog.LevelWarn, why)
		return
	}
}

// followActive calls fn with the beat of the active edge now and whenever
// it changes (the control socket's status follows it).
func (h *hostTunnel) followActive(fn func(*beat)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onSwap = fn
	fn(h.beats[h.on])
}

// activeEdge names the edge that carries the traffic; empty for one edge.
func (h *hostTunnel) activeEdge() string {
	active, _ := h.edgeStatus()
	return active
}

// edgeStatus names the edge that carries the traffic and the standby edges
// that answer heartbeats; empty for one edge.
func (h *hostTunnel) pathMTUStatus() *localapi.PathMTU { return h.link.pathMTUStatus() }

// edgeStatus names the active edge and the healthy standbys.
func (h *hostTunnel) edgeStatus() (active string, standby []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, e := range h.pair {
		if i != h.on && h.beats[i].isHealthy() {
			standby = append(standby, e.Name)
		}
	}
	return activeName(h.pair, h.on), standby
}

// takeReply takes a heartbeat reply out of the packets the WireGuard device
// writes into a Seams.TUN, for the beat aimed at its source; it reports
// whether it did.
func (h *hostTunnel) takeReply(pkt []byte) bool {
	from, m, ok := heartbeat.ParseReplyPacket(pkt)
	if !ok {
		return false
	}
	for _, b := range *h.shown.Load() {
		if b.target() == from {
			b.gotReply(m)
			return true
		}
	}
	return false
}

// leave is beat.leave for the active edge's beat; the others say they leave too.
func (h *hostTunnel) leave(timeout time.Duration) {
	h.mu.Lock()
	active, beats := h.beats[h.on], slices.Clone(h.beats)
	h.mu.Unlock()
	for _, b := range beats {
		if b != active {
			b.leave(0)
		}
	}
	active.leave(timeout)
}

// withHost returns routes with a host route to a added, unless a route
// already covers it.
func withHost(routes []netip.Prefix, a netip.Addr) []netip.Prefix {
	for _, r := range routes {
		if r.Contains(a) {
			return routes
		}
	}
	return append(routes, netip.PrefixFrom(a, a.BitLen()))
}

// Close restores the host and removes the TUN.
func (h *hostTunnel) Close() {
	close(h.stop)
	h.done.Wait()
	for _, b := range h.beats {
		b.Close()
	}
	if err := h.hm.Close(); err != nil {
		h.log.Error("restoring the host", "err", err)
	}
	h.link.Close()
	h.tun.Close()
	<-h.events
	h.closeOps()
}

// follow long-polls the edge for configuration changes and applies each one
// until ctx ends. While the edge is unreachable it retries with backoff. It
// returns an error once the edge no longer accepts the agent (revoked, deleted).
func follow[T any](ctx context.Context, log *slog.Logger, etag string,
	watch func(ctx context.Context, etag string) (T, string, bool, error), apply func(T)) error {
	var b backoff
	for ctx.Err() == nil {
		next, tag, changed, err := watch(ctx, etag)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			var e *model.Error
			if errors.As(err, &e) && (e.Kind == model.KindUnauthorized || e.Kind == model.KindNotFound) {
				return fmt.Errorf("the edge no longer accepts this agent: %w", err)
			}
			wait := b.next()
			log.Warn("waiting for configuration", "err", err, "retry_in", wait.Round(time.Millisecond))
			sleep(ctx, wait)
		default:
			b.reset()
			if changed {
				etag = tag
				apply(next)
			}
		}
	}
	log.Info("stopping")
	return nil
}

// retry calls fn until it succeeds, the edge refuses (a *model.Error other
// than unavailable), or ctx ends, backing off while the edge is unreachable
// or its store is down.
func retry[T any](ctx context.Context, log *slog.Logger, fn func() (T, error)) (T, error) {
	var b backoff
	for {
		v, err := fn()
		var e *model.Error
		if err == nil || errors.As(err, &e) && e.Kind != model.KindUnavailable {
			return v, err
		}
		wait := b.next()
		log.Warn("edge unreachable; retrying", "err", err, "in", wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return v, ctx.Err()
		}
	}
}

// backoff is exponential backoff with jitter: waits start at minBackoff,
// double up to maxBackoff, and each is drawn from [d/2, d) so that agents
// cut off together do not all come back in the same instant.
type backoff struct{ d time.Duration }

const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 15 * time.Second
)

// next returns the time to wait before the next attempt.
func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, minBackoff), maxBackoff)
	return b.d/2 + rand.N(b.d/2)
}

// reset starts over after a success.
func (b *backoff) reset() { b.d = 0 }

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
