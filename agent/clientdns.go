package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/agent/dns"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/tun"
)

// DNSHost says how the kernel-mode client meets the host's DNS; the zero
// value means systemd-resolved when it runs, else /etc/resolv.conf.
type DNSHost struct {
	// ResolvConf, if set, is the resolver configuration the client
	// rewrites (and restores), without asking systemd-resolved: a
	// container's or a test namespace's own file.
	ResolvConf string
}

// dnsCloseTimeout bounds the undoing of the host's DNS on stop (resolvectl
// revert), which runs after the client's context has ended.
const dnsCloseTimeout = 5 * time.Second

// clientDNS is the running client's DNS: the stub, the host integration
// (nil in userspace mode) and the domain split tunnel's learned addresses.
type clientDNS struct {
	stub   *dns.Stub
	host   dns.Host
	routes *domainRoutes
	log    *slog.Logger
}

// toDNS converts the DNS part of a device's configuration into the stub's,
// watching the split tunnel's domains so that resolved asks the stub for
// them too.
func toDNS(c model.DeviceConfig) dns.Config {
	d := dns.Config{Zone: c.DNS.Zone, Server: c.DNS.Server}
	for _, r := range c.DNS.Resolvers {
		d.Resolvers = append(d.Resolvers, dns.Rule{Domain: r.Domain, Servers: r.Servers})
	}
	for _, dom := range splitDomains(c.SplitTunnel) {
		d.Watched = append(d.Watched, strings.TrimPrefix(dom, "*."))
	}
	return d
}

// startKernelDNS opens the host integration and the stub on its address,
// for the kernel mode: the overlay address must be on the TUN already.
// overlay is the device's current overlay address (the tunnel sockets'
// source).
func startKernelDNS(ctx context.Context, cfg ClientConfig, overlay func() netip.Addr, routes *domainRoutes, log *slog.Logger) (*clientDNS, error) {
	hc := dns.HostConfig{Iface: cfg.TunName, Overlay: overlay(), StateDir: cfg.StateDir, Log: log}
	if cfg.DNS.ResolvConf != "" {
		hc.ResolvConf, hc.Mode = cfg.DNS.ResolvConf, "resolv.conf"
	}
	h, err := dns.OpenHost(ctx, hc)
	if err != nil {
		return nil, err
	}
	tunnel := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dns.OverlayDialer(overlay())(ctx, network, addr)
	}
	stub, err := dns.NewStub(dns.StubConfig{
		Listen: h.Listen(), Tunnel: tunnel, HostServers: h.Upstreams(),
		OnAnswer: routes.learn, Log: log.With("component", "dns"),
	})
	if err != nil {
		if cerr := h.Close(context.WithoutCancel(ctx)); cerr != nil {
			log.Error("restoring the host's dns", "err", cerr)
		}
		return nil, err
	}
	log.Info("dns ready", "mode", h.Mode(), "stub", stub.Addr().String())
	return &clientDNS{stub: stub, host: h, routes: routes, log: log}, nil
}

// startUserspaceDNS starts the stub of the userspace mode: no listener and
// no host changes, only Lookup (the proxies' Resolve) through the stack.
func startUserspaceDNS(ns *tun.Netstack, routes *domainRoutes, log *slog.Logger) (*clientDNS, error) {
	stub, err := dns.NewStub(dns.StubConfig{
		Tunnel:   dns.NetstackDialer(func() (net.PacketConn, error) { return ns.ListenUDP(0) }, ns.DialTCP),
		OnAnswer: routes.learn, Log: log.With("component", "dns"),
	})
	if err != nil {
		return nil, err
	}
	return &clientDNS{stub: stub, routes: routes, log: log}, nil
}

// set applies c's DNS rules to the stub, then to the host; errors are
// logged (the tunnel runs on without them).
func (d *clientDNS) set(ctx context.Context, c model.DeviceConfig) {
	conf := toDNS(c)
	if err := d.stub.Set(conf); err != nil {
		d.log.Error("configuring dns", "err", err)
		return
	}
	if d.host == nil {
		return
	}
	if err := d.host.Set(ctx, conf); err != nil {
		d.log.Error("configuring the host's dns", "mode", d.host.Mode(), "err", err)
	}
}

// close undoes the host's DNS (while the TUN still exists), then stops the stub.
func (d *clientDNS) close(ctx context.Context) {
	if d.host != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dnsCloseTimeout)
		defer cancel()
		if err := d.host.Close(ctx); err != nil {
			d.log.Error("restoring the host's dns", "mode", d.host.Mode(), "err", err)
		}
	}
	if err := d.stub.Close(); err != nil {
		d.log.Error("stopping the dns stub", "err", err)
	}
}

// samples are the DNS metrics: the stub's queries by class and the domain
// split tunnel's learned addresses.
func (d *clientDNS) samples() []metrics.Sample {
	st := d.stub.Stats()
	const qHelp = "DNS queries the client's stub answered, by where they went (tunnel, host) or how they ended (failed: SERVFAIL; refused: not from this host)."
	q := func(class string, v uint64) metrics.Sample {
		return metrics.Sample{Name: "switchyard_agent_dns_queries_total", Help: qHelp, Counter: true, Value: float64(v), Labels: []string{"role", "client", "class", class}}
	}
	return []metrics.Sample{
		q("tunnel", st.Tunnel), q("host", st.Host), q("failed", st.Failed), q("refused", st.Refused),
		{Name: "switchyard_agent_dns_learned_routes", Help: "Addresses of the split tunnel's domains routed now (learned from DNS answers).", Value: float64(d.routes.len()), Labels: []string{"role", "client"}},
		{Name: "switchyard_agent_dns_learned_routes_total", Help: "Addresses learned for the split tunnel's domains.", Counter: true, Value: float64(d.routes.nlearned.Load()), Labels: []string{"role", "client"}},
		{Name: "switchyard_agent_dns_learned_routes_evicted_total", Help: fmt.Sprintf("Learned addresses dropped before their time because %d were routed.", maxDomainRoutes), Counter: true, Value: float64(d.routes.nevicted.Load()), Labels: []string{"role", "client"}},
	}
}

// currentIP is the device's overlay address as the latest configuration gives it.
type currentIP struct{ v atomic.Pointer[netip.Addr] }

func (c *currentIP) set(a netip.Addr) { c.v.Store(&a) }

func (c *currentIP) get() netip.Addr {
	if p := c.v.Load(); p != nil {
		return *p
	}
	return netip.Addr{}
}
