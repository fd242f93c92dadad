package agent

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"

	"github.com/switchyard/switchyard/control/model"
)

// underlay returns the addresses an agent reaches the edge at, over its
// host's own network: the edge's WireGuard endpoint, its MASQUE listener and
// its API host, and the API hosts of the cluster's other edges. They are
// never routed into the TUN, or the tunnel would carry itself.
func underlay(edge model.EdgePeer, apiHost string) ([]netip.Addr, error) {
	var out []netip.Addr
	hosts := []string{apiHost}
	for _, ep := range []string{edge.Endpoint, edge.MASQUE} {
		if h, _, err := net.SplitHostPort(ep); err == nil {
			hosts = append(hosts, h)
		}
	}
	for _, api := range edge.APIs {
		if u, err := url.Parse(api); err == nil {
			hosts = append(hosts, u.Hostname())
		}
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if a, err := netip.ParseAddr(h); err == nil {
			out = append(out, a.Unmap())
			continue
		}
		ips, err := net.LookupIP(h)
		if err != nil {
			return nil, fmt.Errorf("resolve edge address %s: %w", h, err)
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out, nil
}
