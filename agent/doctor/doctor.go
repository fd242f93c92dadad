package doctor

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/routing/host"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// Config says what to check.
type Config struct {
	// Role is "connector" (a gateway: forwarding and the LAN's rp_filter
	// matter) or "client".
	Role string
	// TunName is the agent's TUN interface.
	TunName string
	// Prefixes are routed into the tunnel, besides the overlay range and
	// those the running agent installed.
	Prefixes []netip.Prefix
	// Token is a tunnel token or device credential naming the edge; empty
	// skips the edge checks (they warn).
	Token string
	// Host reads the host; nil skips the host checks.
	Host Host
	// Legacy reads the legacy iptables' FORWARD chains (a connector's);
	// nil skips the check.
	Legacy LegacyRunner
	// Daemon is the running agent's control socket; nil skips the check.
	Daemon Daemon
	// Key is the agent's WireGuard private key (agent.ReadKey); zero (the
	// agent never started) skips the handshake with the edge.
	Key wireguard.PrivateKey
	// HTTP reaches the edge; nil means one with the token's pinned CA.
	HTTP *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run performs every check of cfg and reports them in order.
func Run(ctx context.Context, cfg Config) Report {
	var r Report
	add := func(cs ...Check) { r.Checks = append(r.Checks, cs...) }
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if h := cfg.Host; h != nil {
		tp := tunnelPrefixes(h, cfg.Prefixes)
		ifaces := []string{cfg.TunName}
		if cfg.Role == "connector" {
			add(forwarding(h, tp)...)
			ifaces = append(ifaces, lanInterfaces(h, cfg.TunName)...)
			if fi, ok := h.(host.FirewallInspector); ok {
				add(firewall(fi, cfg.TunName)...)
			}
			if cfg.Legacy != nil {
				add(legacyFirewall(ctx, cfg.Legacy, cfg.TunName)...)
			}
		}
		add(rpFilter(h, ifaces)...)
		add(overlaps(h, cfg.TunName, tp)...)
	}
	var st *localapi.Status // the running agent's, if one runs
	if cfg.Daemon != nil {
		mtu := 0
		if mi, ok := cfg.Host.(host.MTUInspector); ok {
			mtu, _ = mi.LinkMTU(cfg.TunName) // 0 when the TUN is missing
		}
		s, err := cfg.Daemon.Status(ctx)
		if err == nil {
			st = &s
		}
		add(daemon(s, err, unit(cfg.Role), cfg.TunName, mtu)...)
	}
	if cfg.Token == "" {
		add(Check{Name: "edge-api", Status: Warn, Detail: "skipped: no token given (--token or SWITCHYARD_TUNNEL_TOKEN)"},
			Check{Name: "clock", Status: Warn, Detail: "skipped: no edge to compare with"})
		return r
	}
	target, tc := parseToken(cfg.Token)
	if tc.Status != OK {
		add(tc)
		return r
	}
	ec := edge(ctx, target, cfg.HTTP, cfg.Now)
	add(ec...)
	if ec[0].Status != OK {
		add(tc)
		return r
	}
	pub := ""
	if !cfg.Key.IsZero() {
		pub = cfg.Key.PublicKey().String()
	}
	cc, tc := credential(ctx, cfg.Token, target, tc, pub)
	add(tc)
	if tc.Status == OK {
		add(wireguardPort(ctx, cc, cfg.Key, st)...)
	}
	return r
}

// unit is the systemd unit of role's agent.
func unit(role string) string { return "switchyard-" + role }
