package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"time"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/routing"
	"github.com/switchyard/switchyard/routing/host"
	"github.com/switchyard/switchyard/transport/masque"
)

// ConnectorConfig configures the connector role.
type ConnectorConfig struct {
	// Token is the tunnel token from `switchyard tunnel create`.
	Token string
	// StateDir keeps the WireGuard key, the enrollment and the host state.
	StateDir string
	// TunName is the TUN interface to create.
	TunName string
	// SNAT masquerades traffic from the tunnel to the site, for sites whose
	// hosts cannot route replies back; servers then see this host's address
	// instead of the true source. Off by default.
	SNAT bool
	// Priority ranks this replica among its tunnel's: the highest that is up
	// is active, unless another one's host holds the gateway address.
	Priority uint8
	// Protocol is how the connector reaches the edge; empty means wireguard.
	Protocol Protocol
	// Edges is how many edges of a cluster the connector keeps sessions to
	// over WireGuard, one active and the others standby (0 means
	// DefaultEdges; 1 holds one session, as with a single edge).
	Edges int
	// WireGuardRetry is how long auto stays on MASQUE before it tries
	// WireGuard again; 0 means DefaultWireGuardRetry.
	WireGuardRetry time.Duration
	// Version is reported to the edge at enrollment.
	Version string
	// MetricsListen is the TCP address of the Prometheus /metrics endpoint
	// (plain HTTP); empty turns it off.
	MetricsListen string
	// Log is the daemon's logger; nil discards.
	Log *slog.Logger
	// Seams replace the operating system in tests; production leaves them nil.
	Seams
}

// DefaultTunName is the connector's TUN interface unless --tun-name says otherwise.
const DefaultTunName = "sy0"

// handoverTimeout bounds how long a stopping replica waits for the edge to
// make another replica active.
const handoverTimeout = time.Second

// pollWait is how long one config long poll waits at the edge.
const pollWait = 25 * time.Second

// RunConnector runs the connector until ctx ends, then undoes everything it
// did to the host.
func RunConnector(ctx context.Context, cfg ConnectorConfig) error {
	if cfg.TunName == "" {
		cfg.TunName = DefaultTunName
	}
	api, tok, err := client.NewConnector(cfg.Token)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	log, k, err := prepare(cfg.StateDir, cfg.Log)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	loc := &local{role: roleConnector, priority: cfg.Priority}
	stopLocal, err := serveLocal(cfg.StateDir, loc, log)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	defer stopLocal()
	hostname, _ := os.Hostname()
	req := model.ConnectorEnrollment{PublicKey: k.publicBase64(), Hostname: hostname, Version: cfg.Version}
	enrolled, err := retry(ctx, log, func() (model.EnrolledConnector, error) { return api.EnrollConnector(ctx, req) })
	if err != nil {
		return fmt.Errorf("connector: enroll: %w", err)
	}
	if err := saveIdentity(cfg.StateDir, identity{ConnectorID: enrolled.Connector.ID, TunnelID: tok.TunnelID}); err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	conf := enrolled.Config
	log.Info("enrolled", "tunnel", conf.TunnelName, "vnet", conf.VNetName, "connector", enrolled.Connector.ID, "edge", conf.Edge.Endpoint)

	auth := masqueAuth{
		header: http.Header{"Authorization": {"Bearer " + cfg.Token}, masque.ConnectorHeader: {enrolled.Connector.ID.String()}},
		tls:    client.PinnedTLS(tok.CAPin),
	}
	ht, err := openHostTunnel(cfg.StateDir, cfg.TunName, conf.MTU, k, conf.Edge, tunnelConfig{protocol: cfg.Protocol, wireGuardRetry: cfg.WireGuardRetry, auth: auth, seams: cfg.Seams, edges: cfg.Edges,
		heartbeat: heartbeatConfig{replica: true, priority: cfg.Priority, preferred: loc.preferred.Load}}, log)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	defer ht.Close()
	ht.followActive(loc.beat.Store)
	loc.tunnel.Store(ht)
	if cfg.MetricsListen != "" {
		stop, err := ht.serveMetrics(ctx, cfg.MetricsListen, "connector")
		if err != nil {
			return fmt.Errorf("connector: %w", err)
		}
		defer stop()
	}
	if err := setSNAT(ht.ops, cfg.TunName, false); err != nil { // a crashed run's rule
		log.Warn("removing a previous SNAT rule", "err", err)
	}
	if cfg.SNAT {
		if err := setSNAT(ht.ops, cfg.TunName, true); err != nil {
			return fmt.Errorf("connector: %w", err)
		}
		defer func() {
			if err := setSNAT(ht.ops, cfg.TunName, false); err != nil {
				log.Error("removing the SNAT rule", "err", err)
			}
		}()
		log.Warn("SNAT is on: servers in this site see this host's address, not the true source")
	}

	// The host's site addresses, for its name at the edge: the first
	// enrollment could not know the site's prefixes.
	sites := &siteReporter{req: req, log: log, enroll: func(ctx context.Context, r model.ConnectorEnrollment) error {
		_, err := api.EnrollConnector(ctx, r)
		return err
	}}
	var apiHost string
	if u, err := url.Parse(tok.API); err == nil {
		apiHost = u.Hostname()
	}
	apply := func(c model.ConnectorConfig) {
		var routes []netip.Prefix
		addrs, err := hostAddresses(ht.ops, cfg.TunName)
		if err == nil {
			var edge []netip.Addr
			if edge, err = underlay(c.Edge, apiHost); err == nil {
				routes = connectorRoutes(c, addrs, edge)
			}
		}
		if err == nil {
			hc := &host.Config{Routes: routes, Forwarding: true, LooseRPFilter: true}
			hc.Src4, hc.Src6 = siteSources(addrs, c.SitePrefixes, model.EdgeOwned(c.OverlayRange))
			err = ht.set(c.Edge, c.OverlayRange, c.SitePrefixes, hc)
		}
		if err != nil {
			log.Error("configuring the host", "err", err)
			return
		}
		log.Info("host configured", "routes", len(routes), "site", c.SitePrefixes)
		sites.report(ctx, siteAddrs(addrs, c.SitePrefixes, model.EdgeOwned(c.OverlayRange)))
	}
	apply(conf)
	err = follow(ctx, log, "", func(ctx context.Context, etag string) (model.ConnectorConfig, string, bool, error) {
		return api.WatchConnectorConfig(ctx, enrolled.Connector.ID, etag, pollWait)
	}, apply)
	// Hand the tunnel to a standby before the routes and the TUN go away.
	ht.leave(handoverTimeout)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	return nil
}

// connectorRoutes is what the connector routes into its TUN: everything
// reachable through the edge, except its own site's prefixes and the subnets
// of the host's addresses (and anything inside them), and never the edge's
// underlay addresses (its endpoints and API), which stay on the host's own
// network. A site prefix that overlaps what belongs to devices and the edge
// (an egress site's 0.0.0.0/0, or 100.64.0.0/10) is no claim on the device
// overlay range, the edge's addresses or other sites: the edge keeps those,
// and other tunnels' more specific routes win there, as in the edge's own
// longest prefix match.
func connectorRoutes(c model.ConnectorConfig, addrs []netip.Prefix, underlay []netip.Addr) []netip.Prefix {
	owned := model.EdgeOwned(c.OverlayRange)
	var keep []netip.Prefix
	for _, p := range c.SitePrefixes {
		if !overlapsAny(p, owned) {
			keep = append(keep, p)
		}
	}
	for _, a := range addrs {
		keep = append(keep, a.Masked())
	}
	return routing.Excluding(routing.WithoutCovered(c.Routes, keep), underlay)
}

// siteSources picks the host's first IPv4 and IPv6 addresses inside its
// site's prefixes, as the source of the host's own traffic into the tunnel
// (and of its heartbeats): the edge accepts only site addresses from a
// connector. An address in a more specific site prefix wins (the LAN's
// 10.1.0.1 of a site that also routes 0.0.0.0/0, not the WAN address), and
// none in owned (the device overlay range, the edge's addresses) is picked.
func siteSources(addrs, site, owned []netip.Prefix) (src4, src6 netip.Addr) {
	best4, best6 := -1, -1
	for _, a := range addrs {
		ip := a.Addr()
		if containsAny(owned, ip) {
			continue
		}
		for _, p := range site {
			if !p.Contains(ip) {
				continue
			}
			if ip.Is4() && p.Bits() > best4 {
				src4, best4 = ip, p.Bits()
			}
			if ip.Is6() && p.Bits() > best6 {
				src6, best6 = ip, p.Bits()
			}
		}
	}
	return src4, src6
}

// overlapsAny reports whether p overlaps a prefix of set.
func overlapsAny(p netip.Prefix, set []netip.Prefix) bool {
	for _, o := range set {
		if p.Overlaps(o) {
			return true
		}
	}
	return false
}

// containsAny reports whether a prefix of set contains a.
func containsAny(set []netip.Prefix, a netip.Addr) bool {
	for _, p := range set {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
