package edge

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
)

// TestConnectorHostNames builds the names of connector hosts: an address
// counts only inside its own tunnel's routed prefixes (not another
// tunnel's more specific one inside them, not the overlay range, not a
// vnet it does not route in); replicas add their own; a device's name wins
// over a host's of the same label; a tunnel without routes names nothing.
func TestConnectorHostNames(t *testing.T) {
	vA, vB := uuid.New(), uuid.New()
	tA, tB, tEgress, tBare := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	route := func(tunnel, vnet uuid.UUID, p string) model.Route {
		return model.Route{TunnelID: tunnel, VNetID: vnet, Network: netip.MustParsePrefix(p)}
	}
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	gwA1, gwA2, shadow, other, egress, bare := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	snap := registry.Snapshot{
		Rev: 7,
		Routes: []model.Route{
			route(tA, vA, "10.1.0.0/16"), route(tA, vA, "2001:db8:1::/48"),
			route(tB, vB, "10.1.0.0/16"), // the same prefix, another vnet
			route(tEgress, vA, "0.0.0.0/0"),
		},
		Devices: []model.Device{{Name: "laptop-7", IP: netip.MustParseAddr("100.96.0.2"), VNetID: vA}},
		Connectors: []model.Connector{
			{ID: gwA1, TunnelID: tA, Hostname: "GW_1", SiteAddrs: addrs("10.1.0.1", "2001:db8:1::1", "192.0.2.1")},
			{ID: gwA2, TunnelID: tA, Hostname: "gw-2", SiteAddrs: addrs("10.1.0.2")},
			// A device's name: the device keeps it in vnet A; in vnet B,
			// where tunnel B routes the same prefix, the host has it.
			{ID: shadow, TunnelID: tA, Hostname: "Laptop-7", SiteAddrs: addrs("10.1.0.5")},
			{ID: other, TunnelID: tB, Hostname: "laptop-7", SiteAddrs: addrs("10.1.0.9")},
			// 0.0.0.0/0, same label as GW_1: its own WAN side counts, not
			// site A's LAN inside it, nor the overlay range.
			{ID: egress, TunnelID: tEgress, Hostname: "gw-1", SiteAddrs: addrs("198.51.100.7", "10.1.0.3", "100.96.0.2")},
			{ID: bare, TunnelID: tBare, Hostname: "bare", SiteAddrs: addrs("10.1.0.4")},
		},
	}
	index := map[uuid.UUID]uint32{vA: 0, vB: 1}
	names, refused := buildNames(snap, model.EdgeOwned(model.DefaultOverlayRange), func(id uuid.UUID) uint32 { return index[id] })
	want := map[uint32]map[string][]netip.Addr{
		0: {"laptop-7": addrs("100.96.0.2"), "gw-1": addrs("10.1.0.1", "2001:db8:1::1", "198.51.100.7"), "gw-2": addrs("10.1.0.2")},
		1: {"laptop-7": addrs("10.1.0.9")},
	}
	for v, m := range want {
		for label, a := range m {
			if got := names.byVNet[v][label]; !slices.Equal(got, a) {
				t.Errorf("vnet %d %s: %v, want %v", v, label, got, a)
			}
		}
		if len(names.byVNet[v]) != len(m) {
			t.Errorf("vnet %d: names %v, want %v", v, names.byVNet[v], m)
		}
	}
	wantRefused := []refusedAddr{
		{gwA1, netip.MustParseAddr("192.0.2.1")},
		{egress, netip.MustParseAddr("10.1.0.3")}, {egress, netip.MustParseAddr("100.96.0.2")},
		{bare, netip.MustParseAddr("10.1.0.4")},
	}
	if !slices.Equal(refused, wantRefused) {
		t.Errorf("refused %v, want %v", refused, wantRefused)
	}
}

// TestConnectorHostNamesServed: a connector enrolls with its host's site
// addresses; a device resolves the host's name at the edge and gets those
// inside the site, the one outside is refused and counted; enrolling again
// without addresses keeps them, with none clears them.
func TestConnectorHostNamesServed(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	tun, secret := l.tunnel(t, "site-a", "", "10.1.0.0/16", "2001:db8:1::/48")
	site := newAgentPeer(t, l.dp.ep.PublicKey(), l.dp.ep.Port())
	enroll := func(a []netip.Addr) {
		t.Helper()
		if _, err := l.reg.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: site.key, Hostname: "gw1", SiteAddrs: a}); err != nil {
			t.Fatal(err)
		}
	}
	enroll([]netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("203.0.113.5")})
	laptop, laptopIP := l.device(t, "laptop-7", "")
	edge4 := model.EdgeAddress(model.DefaultOverlayRange)
	// Both peers keep alive, so both sessions come up: wait for both.
	site.send(t, ping(edge4.String(), "10.1.0.1"))
	laptop.send(t, ping(edge4.String(), laptopIP.String()))
	l.waitUp(t, 2)
	const wait = 2 * time.Second
	eventually(t, "the host's name", 5*time.Second, func() bool { return len(l.dp.dns.names.Load().byVNet[0]["gw1"]) == 2 })
	wantAnswer(t, "gw1 A", query(t, laptop, laptopIP, edge4, "gw1.sy.internal", dns.TypeA, wait), dns.RcodeSuccess, "10.1.0.1")
	wantAnswer(t, "gw1 AAAA", query(t, laptop, laptopIP, edge4, "gw1.sy.internal", dns.TypeAAAA, wait), dns.RcodeSuccess, "2001:db8:1::1")
	if n := l.dp.stats().(Stats).DNSRefusedSiteAddrs; n != 1 {
		t.Fatalf("refused site addresses: %d, want 1", n)
	}

	enroll(nil) // a restart: the addresses stay
	time.Sleep(200 * time.Millisecond)
	wantAnswer(t, "gw1 A after enrolling without addresses", query(t, laptop, laptopIP, edge4, "gw1.sy.internal", dns.TypeA, wait), dns.RcodeSuccess, "10.1.0.1")
	enroll([]netip.Addr{})
	eventually(t, "the name gone", 5*time.Second, func() bool { return len(l.dp.dns.names.Load().byVNet[0]["gw1"]) == 0 })
	wantAnswer(t, "gw1 A after clearing", query(t, laptop, laptopIP, edge4, "gw1.sy.internal", dns.TypeA, wait), dns.RcodeNameError)
	if n := l.dp.stats().(Stats).DNSRefusedSiteAddrs; n != 0 {
		t.Fatalf("refused site addresses after clearing: %d, want 0", n)
	}
}
