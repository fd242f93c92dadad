package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netns"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/routing"
	"github.com/switchyard/switchyard/routing/host"
	"github.com/switchyard/switchyard/tun"
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
	// Version is reported to the edge at enrollment.
	Version string
	// Log is the daemon's logger; nil discards.
	Log *slog.Logger
}

// DefaultTunName is the connector's TUN interface unless --tun-name says otherwise.
const DefaultTunName = "sy0"

// pollWait is how long one config long poll waits at the edge.
const pollWait = 25 * time.Second

// RunConnector runs the connector until ctx ends, then undoes everything it
// did to the host.
func RunConnector(ctx context.Context, cfg ConnectorConfig) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.TunName == "" {
		cfg.TunName = DefaultTunName
	}
	if cfg.StateDir == "" {
		return errors.New("connector: --state-dir is required")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("connector: create state dir: %w", err)
	}
	api, tok, err := client.NewConnector(cfg.Token)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	k, err := loadOrCreateKey(cfg.StateDir)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}

	ops, hostState, err := openHost(cfg.StateDir, cfg.TunName, log)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	defer ops.Close()

	enrolled, err := enroll(ctx, api, k, cfg, log)
	if err != nil {
		return err
	}
	if err := saveIdentity(cfg.StateDir, identity{ConnectorID: enrolled.Connector.ID, TunnelID: tok.TunnelID}); err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	conf := enrolled.Config
	log.Info("enrolled", "tunnel", conf.TunnelName, "vnet", conf.VNetName, "connector", enrolled.Connector.ID, "edge", conf.Edge.Endpoint)

	kernelTUN, err := tun.CreateKernel(cfg.TunName, conf.MTU)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	clamped, err := tun.NewMSSClamp(kernelTUN, conf.MTU)
	if err != nil {
		kernelTUN.Close()
		return fmt.Errorf("connector: %w", err)
	}
	dev, err := startDevice(clamped, k, conf.Edge, log.With("component", "wireguard-go"))
	if err != nil {
		clamped.Close()
		return fmt.Errorf("connector: %w", err)
	}
	defer dev.Close()

	hm, err := host.NewManager(ops, hostState)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	defer func() {
		if err := hm.Close(); err != nil {
			log.Error("restoring the host", "err", err)
		}
	}()
	if err := host.DisableSNAT(cfg.TunName); err != nil { // a crashed run's rule
		log.Warn("removing a previous SNAT rule", "err", err)
	}
	if cfg.SNAT {
		if err := host.EnableSNAT(cfg.TunName); err != nil {
			return fmt.Errorf("connector: %w", err)
		}
		defer func() {
			if err := host.DisableSNAT(cfg.TunName); err != nil {
				log.Error("removing the SNAT rule", "err", err)
			}
		}()
		log.Warn("SNAT is on: servers in this site see this host's address, not the true source")
	}
	apply := func(c model.ConnectorConfig) {
		if err := dev.setEdge(c.Edge); err != nil {
			log.Error("updating the edge peer", "err", err)
		}
		want, err := hostRoutes(c, ops, cfg.TunName)
		if err == nil {
			err = hm.Set(&host.Config{Interface: cfg.TunName, Routes: want, Forwarding: true, LooseRPFilter: true})
		}
		if err != nil {
			log.Error("configuring the host", "err", err)
			return
		}
		log.Info("host configured", "routes", len(want), "site", c.SitePrefixes)
	}
	apply(conf)

	etag := ""
	for ctx.Err() == nil {
		next, tag, changed, err := api.WatchConnectorConfig(ctx, enrolled.Connector.ID, etag, pollWait)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			var e *model.Error
			if errors.As(err, &e) && (e.Kind == model.KindUnauthorized || e.Kind == model.KindNotFound) {
				return fmt.Errorf("connector: the edge no longer accepts this connector: %w", err)
			}
			log.Warn("waiting for configuration", "err", err)
			sleep(ctx, 2*time.Second)
		case changed:
			etag = tag
			apply(next)
		}
	}
	log.Info("stopping")
	return nil
}

// enroll registers the connector's key, retrying while the edge is unreachable.
func enroll(ctx context.Context, api *client.Client, k key, cfg ConnectorConfig, log *slog.Logger) (model.EnrolledConnector, error) {
	hostname, _ := os.Hostname()
	req := model.ConnectorEnrollment{PublicKey: k.publicBase64(), Hostname: hostname, Version: cfg.Version}
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		enrolled, err := api.EnrollConnector(ctx, req)
		if err == nil {
			return enrolled, nil
		}
		var e *model.Error
		if errors.As(err, &e) {
			return enrolled, fmt.Errorf("connector: enroll: %w", err) // the edge said no
		}
		log.Warn("edge unreachable; retrying", "err", err, "in", backoff)
		if !sleep(ctx, backoff) {
			return enrolled, ctx.Err()
		}
	}
}

// hostRoutes is what the connector routes into its TUN: everything reachable
// through the edge, except its own site's prefixes and the host's connected
// subnets (and anything inside them).
func hostRoutes(c model.ConnectorConfig, ops *host.NetlinkOps, tunName string) ([]netip.Prefix, error) {
	connected, err := ops.ConnectedPrefixes(tunName)
	if err != nil {
		return nil, err
	}
	keep := append(append([]netip.Prefix(nil), c.SitePrefixes...), connected...)
	return routing.WithoutCovered(c.Routes, keep), nil
}

// openHost opens netlink in the agent's network namespace and undoes what a
// previous run left behind if it crashed (routes marked as ours through the
// TUN, sysctls recorded in the state file).
func openHost(stateDir, tunName string, log *slog.Logger) (*host.NetlinkOps, string, error) {
	ops, err := host.NewNetlinkOps(netns.None())
	if err != nil {
		return nil, "", err
	}
	stateFile := filepath.Join(stateDir, "host-state.json")
	if err := host.Sweep(ops, tunName, stateFile); err != nil {
		log.Warn("cleaning up after a previous run", "err", err)
	}
	return ops, stateFile, nil
}

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
