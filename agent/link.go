package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/switchyard/switchyard/agent/localapi"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/transport/masque"
)

// Protocol is how an agent reaches the edge.
type Protocol string

// Protocols for --protocol.
const (
	ProtocolWireGuard Protocol = "wireguard"
	ProtocolMASQUE    Protocol = "masque" // CONNECT-IP over HTTP/3, for networks that block WireGuard
	ProtocolAuto      Protocol = "auto"   // WireGuard, MASQUE when no WireGuard handshake completes
)

// ParseProtocol checks a --protocol value; empty means wireguard.
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(s); p {
	case "":
		return ProtocolWireGuard, nil
	case ProtocolWireGuard, ProtocolMASQUE, ProtocolAuto:
		return p, nil
	}
	return "", fmt.Errorf("protocol %q is not wireguard, masque or auto", s)
}

// tunMTU is the MTU of the TUN for protocol p when the edge says mtu: the
// MASQUE path carries less (masque.MTU), and auto may take either.
func tunMTU(p Protocol, mtu int) int {
	if p == ProtocolWireGuard {
		return mtu
	}
	return min(mtu, masque.MTU)
}

// DefaultWireGuardRetry is how long auto stays on MASQUE before it tries
// WireGuard again, unless configured otherwise.
const DefaultWireGuardRetry = 2 * time.Minute

// Timing of the auto protocol.
var (
	// fallbackAfter is how long auto waits for a WireGuard handshake before
	// it switches to MASQUE.
	fallbackAfter = 5 * time.Second
	// staleHandshake: a WireGuard session that has not completed a handshake
	// for this long (it rekeys every 2 minutes while traffic flows, and agents
	// send keepalives every second) is dead, and auto falls back.
	staleHandshake = 3 * time.Minute
)

// masqueAuth is how an agent proves its identity over MASQUE: the
// credential it uses with the API, and the edge CA it pins.
type masqueAuth struct {
	header http.Header
	tls    *tls.Config
}

// link carries the TUN's packets to the edge over the transport its protocol
// picks, and for auto switches between WireGuard and MASQUE. It owns one
// goroutine (run), which Close stops and waits for.
type link struct {
	tun   sharedTUN // the host's TUN (with the MSS clamp); never closed here
	bind  conn.Bind // Seams.Bind, or nil for wireguard-go's default
	pmc   pathMTUConfig
	k     key
	proto Protocol
	auth  masqueAuth
	retry time.Duration // auto: time on MASQUE before trying WireGuard again
	log   *slog.Logger

	mu     sync.Mutex
	edge   model.EdgePeer
	pair   []model.ClusterEdge   // WireGuard to two edges (pair.go); nil: to edge alone
	on     int                   // the active one in pair
	routes []netip.Prefix        // advertised over MASQUE
	wg     *wgDevice             // the active WireGuard device, or nil
	ms     *masque.ClientSession // the active MASQUE session, or nil
	cancel context.CancelFunc
	done   chan struct{}
	// shrinks counts MASQUE sessions closed because their path shrank (shrink.go).
	shrinks atomic.Uint64
}

// startLink starts carrying packets; for wireguard it fails at once if the
// device cannot start.
func startLink(tun sharedTUN, k key, tc tunnelConfig, edge model.EdgePeer, log *slog.Logger) (*link, error) {
	proto, retry := tc.protocol, tc.wireGuardRetry
	if retry <= 0 {
		retry = DefaultWireGuardRetry
	}
	l := &link{tun: tun, bind: tc.seams.Bind, pmc: tc.pathMTU, k: k, proto: proto, auth: tc.auth, retry: retry, log: log, edge: edge,
		done: make(chan struct{})}
	if proto == ProtocolWireGuard {
		// The plain protocol starts synchronously, as it always has.
		wg, err := startDevice(newTUNView(tun), l.bind, k, edge, l.pmc, log.With("component", "wireguard-go"))
		if err != nil {
			return nil, err
		}
		l.wg = wg
		close(l.done)
		return l, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { defer close(l.done); l.run(ctx) }()
	return l, nil
}

// pathMTUConfig is what a WireGuard device's path MTU probes need from the
// host tunnel: the ceiling, and how to apply a result.
type pathMTUConfig struct {
	mtu   int                     // the edge's inner MTU (the TUN's at start)
	apply func(tunMTU, clamp int) // sets the TUN's MTU and the MSS clamp; nil: nothing
}

// applyInner applies an inner MTU the path carries: to view (wireguard-go's
// padding cap, and the IPv4 errors below 1280), the TUN's MTU (never below
// 1280, for IPv6) and the MSS clamp (clamp). WireGuard's probes and
// MASQUE's discovery both end here.
func (c pathMTUConfig) applyInner(view *tunView, inner, clamp int) {
	if view != nil {
		view.setMTU(inner)
	}
	if c.apply != nil {
		c.apply(max(inner, minIPv6MTU), clamp)
	}
}

// pathMTUStatus is the active WireGuard session's path MTU; over MASQUE the
// agent→edge one its QUIC discovered (the edge knows the other direction).
func (l *link) pathMTUStatus() *localapi.PathMTU {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ms != nil {
		return &localapi.PathMTU{AgentToEdge: l.ms.MTU(), State: localapi.PathMTUDone}
	}
	if l.wg == nil {
		return nil
	}
	return l.wg.pm.status()
}

// kickPathMTU makes the WireGuard sessions' path MTU searches run again
// (their heartbeats came back after a loss).
func (l *link) kickPathMTU() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wg != nil {
		l.wg.pm.kick()
	}
}

// setEdge applies a new edge configuration and the routes to advertise over
// MASQUE (a connector's site prefixes, a client's overlay address). With a
// pair (WireGuard only), the device's peers are its edges, pair[on] active.
func (l *link) setEdge(edge model.EdgePeer, pair []model.ClusterEdge, on int, routes []netip.Prefix) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.edge, l.pair, l.on = edge, pair, on
	var err error
	if l.wg != nil {
		if pair != nil {
			err = l.wg.setPair(pair, on)
		} else {
			err = l.wg.setEdge(edge)
		}
	}
	if l.ms != nil && !slices.Equal(l.routes, routes) {
		err = errors.Join(err, l.ms.Advertise(routes))
	}
	l.routes = slices.Clone(routes)
	return err
}

// run switches between the transports until ctx ends.
func (l *link) run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		if l.proto == ProtocolAuto && l.runWireGuard(ctx) {
			backoff = time.Second
			continue // WireGuard worked until its handshakes went stale: try again from the start
		}
		if ctx.Err() != nil {
			return
		}
		var until <-chan time.Time
		retry := time.NewTimer(l.retry)
		if l.proto == ProtocolAuto {
			until = retry.C
		}
		start := time.Now()
		err := l.runMASQUE(ctx, until)
		retry.Stop()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		default:
			if time.Since(start) > time.Minute {
				backoff = time.Second
			}
			l.log.Warn("MASQUE to the edge failed", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// runWireGuard starts wireguard-go on the TUN and keeps it while handshakes
// complete; it reports whether one did (false: it gave up within
// fallbackAfter, or ctx ended).
func (l *link) runWireGuard(ctx context.Context) bool {
	l.mu.Lock()
	wg, err := startDevice(newTUNView(l.tun), l.bind, l.k, l.edge, l.pmc, l.log.With("component", "wireguard-go"))
	if err != nil {
		l.mu.Unlock()
		l.log.Warn("starting WireGuard", "err", err)
		return false
	}
	l.wg = wg
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.wg = nil
		l.mu.Unlock()
		wg.Close()
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(fallbackAfter)
	up := false
	for {
		select {
		case <-ctx.Done():
			return up
		case <-tick.C:
		}
		last := wg.lastHandshake()
		switch {
		case !up && !last.IsZero():
			up = true
			l.log.Info("connected to the edge", "protocol", ProtocolWireGuard)
		case !up && time.Now().After(deadline):
			l.log.Warn("no WireGuard handshake; falling back to MASQUE", "after", fallbackAfter)
			return false
		case up && time.Since(last) > staleHandshake:
			l.log.Warn("WireGuard handshakes stopped; reconnecting", "last", last)
			return true
		}
	}
}

// runMASQUE opens a MASQUE session and pumps packets until it ends, ctx
// ends, or until fires (time to try WireGuard again); nil unless the
// session could not open or broke.
func (l *link) runMASQUE(ctx context.Context, until <-chan time.Time) error {
	l.mu.Lock()
	edge, routes := l.edge, l.routes
	l.mu.Unlock()
	if edge.MASQUE == "" {
		return errors.New("the edge serves no MASQUE (its --masque-listen is off)")
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	ms, err := masque.Dial(dctx, masque.ClientConfig{
		Addr: edge.MASQUE, TLS: l.auth.tls, Header: l.auth.header, Routes: routes,
		ExpectAddress: l.auth.header.Get(masque.ConnectorHeader) == "",
		Log:           l.log,
	})
	cancel()
	if err != nil {
		return err
	}
	defer masqueProcs.acquire(l.log)()
	view := newTUNView(l.tun)
	// The session's inner MTU follows QUIC's path MTU discovery: the TUN's
	// MTU (at least 1280, for IPv6; the view answers larger IPv4 DF
	// packets below that) and the MSS clamp follow it.
	ms.NotifyMTU(func(mtu int) { l.pmc.applyInner(view, mtu, mtu) })
	l.mu.Lock()
	l.ms = ms
	if !slices.Equal(routes, l.routes) { // changed while dialing
		ms.Advertise(l.routes)
	}
	l.mu.Unlock()
	l.log.Info("connected to the edge", "protocol", ProtocolMASQUE, "edge", edge.MASQUE, "mtu", ms.MTU())

	served := make(chan error, 1)
	pumped := make(chan struct{})
	go func() { defer close(pumped); pumpToEdge(view, ms.Session) }()
	go func() { served <- ms.Serve(newTUNWriter(view)) }()
	ended := false
	select {
	case err = <-served:
		ended = true
	case <-ctx.Done():
	case <-until:
		l.log.Info("trying WireGuard again")
	}
	l.mu.Lock()
	l.ms = nil
	l.mu.Unlock()
	ms.NotifyMTU(nil) // returns after a running notification: none touches the next transport's TUN
	ms.Close()
	st := ms.Stats()
	l.log.Info("MASQUE session closed", "edge", edge.MASQUE, "rx_datagrams", st.RxPackets, "tx_datagrams", st.TxPackets,
		"tx_errors", st.TxErrors, "tx_too_big", st.TxTooBig, "quic_packets_received", st.QUIC.PacketsReceived,
		"quic_packets_sent", st.QUIC.PacketsSent, "quic_packets_lost", st.QUIC.PacketsLost)
	view.Close()
	<-pumped
	if !ended {
		err = <-served // nil after Close
	}
	if err != nil {
		return fmt.Errorf("MASQUE session ended: %w", err)
	}
	return nil
}

// pumpToEdge reads batches from the TUN and writes each packet to the
// session until the view is closed. A packet above the session's MTU is
// refused, counted and logged by the session (masque.ErrTooBig).
func pumpToEdge(view *tunView, s *masque.Session) {
	n := view.BatchSize()
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, masque.Headroom+maxPacket)
	}
	frag := make([]byte, maxPacket)
	for {
		count, err := view.Read(bufs, sizes, masque.Headroom)
		for i := range count {
			pkt := bufs[i][masque.Headroom : masque.Headroom+sizes[i]]
			if mtu := s.MTU(); len(pkt) > mtu && ipv4NoDF(pkt) {
				// QUIC never fragments: an IPv4 packet that may be
				// fragmented is, here (one with DF got Fragmentation
				// Needed from the view or the kernel).
				for off, more := 0, true; more; {
					n, next := router.Fragment(frag, pkt, mtu, off)
					if n == 0 {
						break
					}
					s.WritePacket(frag[:n])
					off, more = next, next != 0
				}
				continue
			}
			s.WritePacket(pkt)
		}
		if err != nil && !errors.Is(err, wgtun.ErrTooManySegments) {
			return
		}
	}
}

// ipv4NoDF reports whether pkt is an IPv4 packet without Don't Fragment.
func ipv4NoDF(pkt []byte) bool { return len(pkt) >= 20 && pkt[0]>>4 == 4 && pkt[6]&0x40 == 0 }

// maxPacket bounds what one TUN read returns per buffer: the TUN's MTU,
// at most masque.MTU whenever MASQUE may run (tunMTU); segmentation
// offload splits larger reads into MTU-sized packets across the buffers.
const maxPacket = 4096

// Close stops the transports; the TUN stays open.
func (l *link) Close() {
	if l.cancel != nil {
		l.cancel()
	}
	<-l.done
	l.mu.Lock()
	wg := l.wg
	l.wg = nil
	l.mu.Unlock()
	if wg != nil {
		wg.Close()
	}
}

// swap moves the traffic to pair[to] (see wgDevice.swap).
func (l *link) swap(to int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wg == nil {
		return errors.New("swap edges: no WireGuard device")
	}
	if err := l.wg.swap(to); err != nil {
		return err
	}
	l.on = to
	return nil
}

// restartEdge is restart for the session with the edge of the pair whose
// key is key alone; without a pair, restart.
func (l *link) restartEdge(key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.wg == nil:
		return nil
	case l.pair != nil:
		for i, e := range l.pair {
			if e.PublicKey == key {
				return l.wg.restartPeer(i)
			}
		}
		return nil
	}
	return l.wg.restart()
}

// restart makes the active transport reconnect at once after the edge
// stopped answering heartbeats: WireGuard drops its session and handshakes
// again; a MASQUE session is left to QUIC, whose idle timeout ends a dead
// one within seconds and makes run dial again.
func (l *link) restart() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wg != nil {
		return l.wg.restart()
	}
	return nil
}
