package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/routing/host"
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
	beat     *beat
	log      *slog.Logger
	events   chan struct{} // closed when the TUN's event drain ends
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
	h := &hostTunnel{name: name, ops: ops, closeOps: closeOps, kernel: tc.seams.TUN == nil, tun: shared, link: l, hm: hm, log: log, events: events}
	hb := tc.heartbeat
	hb.noSocket = !h.kernel
	h.beat = newBeat(log.With("component", "heartbeat"), stateDir, hb, func() {
		if err := l.restart(); err != nil {
			log.Warn("restarting the handshake with the edge", "err", err)
		}
	})
	return h, nil
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
	replica   bool        // a connector replica: keep the file keepalived reads
	priority  uint8       // its rank among its tunnel's replicas
	preferred func() bool // its host holds the site's gateway address (connector promote)
	noSocket  bool        // the TUN is not the host's: send no probes (Seams.TUN)
}

// set points the link at edge, advertising routes over MASQUE, and makes the
// host's routes into the TUN (and sysctls) match cfg; heartbeats go to one of
// the edge's addresses, from cfg.Src4 or cfg.Src6 (see heartbeatTarget), and
// the edge's IPv6 address is routed into the TUN when they go there.
func (h *hostTunnel) set(edge model.EdgePeer, overlay netip.Prefix, advertise []netip.Prefix, cfg *host.Config) error {
	cfg.Interface = h.name
	src, dst := heartbeatTarget(cfg.Src4, cfg.Src6, model.EdgeAddress(overlay), model.EdgeAddress6)
	if dst.Is6() {
		cfg.Routes = withHost(cfg.Routes, dst)
	}
	err := errors.Join(h.link.setEdge(edge, advertise), h.hm.Set(cfg))
	if err == nil {
		h.beat.aim(src, dst)
		h.applies.Add(1)
		h.routes.Store(int64(len(cfg.Routes)))
	}
	return err
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
	h.beat.Close()
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
