package dns

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
)

// resolved is the integration with systemd-resolved: the client's link
// gets the stub (on the overlay address) as its DNS server and a routing
// domain ~DOMAIN for each rule and the zone, and is never the default
// route, so resolved asks the stub for those domains only.
type resolved struct {
	hc        HostConfig
	upstreams []netip.AddrPort
	mu        sync.Mutex
	set       bool
}

// openResolved reads resolved's upstream servers (its resolv.conf lists
// them) for the names no rule matches.
func openResolved(hc HostConfig) (*resolved, error) {
	if !hc.Overlay.IsValid() {
		return nil, fmt.Errorf("dns with systemd-resolved on %s: no overlay address", hc.Iface)
	}
	up, _, err := readResolvConf(filepath.Join(hc.ResolvedDir, "resolv.conf"), hc.Overlay)
	if err != nil {
		return nil, fmt.Errorf("dns with systemd-resolved: %w", err)
	}
	if len(up) == 0 {
		up = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53")}
	}
	hc.Log.Info("dns through systemd-resolved", "iface", hc.Iface, "stub", netip.AddrPortFrom(hc.Overlay, 53).String(), "host_servers", fmt.Sprint(up))
	return &resolved{hc: hc, upstreams: up}, nil
}

// Mode implements Host.
func (r *resolved) Mode() string { return "resolved" }

// Listen implements Host.
func (r *resolved) Listen() netip.AddrPort { return netip.AddrPortFrom(r.hc.Overlay, 53) }

// Upstreams implements Host.
func (r *resolved) Upstreams() []netip.AddrPort { return slices.Clone(r.upstreams) }

// Set implements Host: resolvectl dns, domain and default-route on the
// client's link, or revert when c has no domain.
func (r *resolved) Set(ctx context.Context, c Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	domains := c.Domains()
	if len(domains) == 0 {
		return r.revert(ctx)
	}
	routing := make([]string, len(domains))
	for i, d := range domains {
		routing[i] = "~" + d
	}
	iface := r.hc.Iface
	if _, err := r.hc.Run(ctx, "resolvectl", "dns", iface, r.hc.Overlay.String()); err != nil {
		return fmt.Errorf("dns: set the dns server of %s: %w", iface, err)
	}
	r.set = true
	if _, err := r.hc.Run(ctx, "resolvectl", append([]string{"domain", iface}, routing...)...); err != nil {
		return fmt.Errorf("dns: set the routing domains of %s: %w", iface, err)
	}
	// Routing domains alone already keep the link from being the default
	// route; saying so also holds if an operator adds "~." elsewhere.
	if _, err := r.hc.Run(ctx, "resolvectl", "default-route", iface, "false"); err != nil {
		r.hc.Log.Warn("dns: resolved cannot clear the default route of the link", "iface", iface, "err", err)
	}
	r.hc.Log.Info("dns: resolved configured", "iface", iface, "server", r.hc.Overlay.String(), "domains", fmt.Sprint(routing))
	return nil
}

// Close implements Host: resolvectl revert.
func (r *resolved) Close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.revert(ctx)
}

func (r *resolved) revert(ctx context.Context) error {
	if !r.set {
		return nil
	}
	if _, err := r.hc.Run(ctx, "resolvectl", "revert", r.hc.Iface); err != nil {
		return fmt.Errorf("dns: revert the dns of %s: %w", r.hc.Iface, err)
	}
	r.set = false
	r.hc.Log.Info("dns: resolved reverted", "iface", r.hc.Iface)
	return nil
}
