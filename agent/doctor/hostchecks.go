package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/routing/host"
)

// Overlay is the device overlay range that agents route into the tunnel.
var Overlay = netip.MustParsePrefix("100.96.0.0/12")

// Host is what the host checks read: sysctls, routes and addresses.
type Host interface {
	// GetSysctl returns the value of a /proc/sys key such as
	// "net/ipv4/ip_forward"; a missing key wraps fs.ErrNotExist.
	GetSysctl(key string) (string, error)
	host.Inspector
}

// sysctlName turns "net/ipv4/ip_forward" into "net.ipv4.ip_forward".
func sysctlName(key string) string { return strings.ReplaceAll(key, "/", ".") }

// sysctlFix is the command that sets key to value; a key with a dot in an
// interface name (eth0.100) keeps its slashes, which sysctl(8) also takes.
func sysctlFix(key, value string) string {
	if strings.Contains(key, ".") {
		return "sysctl -w " + key + "=" + value
	}
	return "sysctl -w " + sysctlName(key) + "=" + value
}

// forwarding checks IPv4 forwarding, and IPv6 forwarding when a prefix is IPv6.
func forwarding(h Host, prefixes []netip.Prefix) []Check {
	keys := []string{"net/ipv4/ip_forward"}
	if slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
		keys = append(keys, "net/ipv6/conf/all/forwarding")
	}
	var out []Check
	for _, k := range keys {
		c := Check{Name: "forwarding"}
		v, err := h.GetSysctl(k)
		switch {
		case err != nil:
			c.Status, c.Detail = Fail, fmt.Sprintf("read %s: %v", sysctlName(k), err)
		case v == "1":
			c.Status, c.Detail = OK, sysctlName(k)+" = 1"
		default:
			c.Status = Fail
			c.Detail = sysctlName(k) + " = " + v + ": the host drops packets between the tunnel and the site"
			c.Fix = sysctlFix(k, "1")
		}
		out = append(out, c)
	}
	return out
}

// rpFilter checks the reverse-path filter of each interface in ifaces that
// exists. The kernel applies the larger of conf.all and conf.<if>, so strict
// mode (1) in either drops packets whose reply would leave by another
// interface: asymmetric routes through the gateway.
func rpFilter(h Host, ifaces []string) []Check {
	all, err := h.GetSysctl("net/ipv4/conf/all/rp_filter")
	if err != nil {
		return []Check{{Name: "rp_filter", Status: Warn, Detail: fmt.Sprintf("read net.ipv4.conf.all.rp_filter: %v", err)}}
	}
	var out []Check
	for _, ifc := range ifaces {
		key := "net/ipv4/conf/" + ifc + "/rp_filter"
		v, err := h.GetSysctl(key)
		if errors.Is(err, fs.ErrNotExist) {
			continue // not on this host (a TUN of an agent that is not running)
		}
		c := Check{Name: "rp_filter"}
		if err != nil {
			c.Status, c.Detail = Warn, fmt.Sprintf("read %s: %v", sysctlName(key), err)
			out = append(out, c)
			continue
		}
		switch {
		case all == "1":
			c.Status = Warn
			c.Detail = "net.ipv4.conf.all.rp_filter = 1 (strict) applies to " + ifc + ": packets of asymmetric routes through it are dropped"
			c.Fix = sysctlFix("net/ipv4/conf/all/rp_filter", "2")
		case v == "1":
			c.Status = Warn
			c.Detail = sysctlName(key) + " = 1 (strict): packets of asymmetric routes through " + ifc + " are dropped"
			c.Fix = sysctlFix(key, "2")
		default:
			c.Status = OK
			c.Detail = fmt.Sprintf("%s: rp_filter %s (all %s)", ifc, v, all)
		}
		out = append(out, c)
	}
	return out
}

// overlaps checks that no route or address of the host outside the tunnel
// takes traffic meant for the tunnel: a route in the main table, not through
// tunIf, as specific as or more specific than one of tunnelPrefixes (the
// tunnel's own route would lose to it, or be replaced). Less specific routes,
// such as the default route, lose to the tunnel's and are fine.
func overlaps(h Host, tunIf string, tunnelPrefixes []netip.Prefix) []Check {
	routes, err := h.Routes()
	if err != nil {
		return []Check{{Name: "route-conflict", Status: Fail, Detail: err.Error()}}
	}
	addrs, err := h.Addrs()
	if err != nil {
		return []Check{{Name: "route-conflict", Status: Fail, Detail: err.Error()}}
	}
	var out []Check
	for _, r := range routes {
		if r.Table != 0 || r.Dev == tunIf || r.Protocol == host.RouteProtocol {
			continue
		}
		for _, p := range tunnelPrefixes {
			if !r.Dst.Overlaps(p) || r.Dst.Bits() < p.Bits() || r.Dst.Addr().Is4() != p.Addr().Is4() {
				continue
			}
			c := Check{Name: "route-conflict", Status: Fail}
			if a, ok := connected(addrs, r); ok {
				c.Detail = fmt.Sprintf("address %s on %s overlaps %s, which the tunnel carries", a.Prefix, a.Dev, p)
				c.Fix = "ip addr del " + a.Prefix.String() + " dev " + a.Dev
			} else {
				c.Detail = fmt.Sprintf("route %s dev %s overlaps %s, which the tunnel carries: traffic for it leaves by %s", r.Dst, r.Dev, p, r.Dev)
				c.Fix = "ip route del " + r.Dst.String()
				if r.Dev != "" {
					c.Fix += " dev " + r.Dev
				}
			}
			out = append(out, c)
			break
		}
	}
	if len(out) == 0 {
		names := make([]string, len(tunnelPrefixes))
		for i, p := range tunnelPrefixes {
			names[i] = p.String()
		}
		out = append(out, Check{Name: "route-conflict", Status: OK, Detail: "no route or address outside " + tunIf + " overlaps " + strings.Join(names, ", ")})
	}
	return out
}

// connected returns the address on r's interface whose subnet is r: the
// kernel's connected route, fixed by removing the address.
func connected(addrs []host.HostAddr, r host.HostRoute) (host.HostAddr, bool) {
	const protoKernel = 2
	if r.Protocol != protoKernel {
		return host.HostAddr{}, false
	}
	for _, a := range addrs {
		if a.Dev == r.Dev && a.Prefix.Masked() == r.Dst {
			return a, true
		}
	}
	return host.HostAddr{}, false
}

// tunnelPrefixes merges the prefixes given, those the running agent routed
// into the TUN (marked with host.RouteProtocol) and the overlay range.
func tunnelPrefixes(h Host, given []netip.Prefix) []netip.Prefix {
	out := []netip.Prefix{Overlay}
	add := func(p netip.Prefix) {
		p = p.Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, p := range given {
		add(p)
	}
	if routes, err := h.Routes(); err == nil {
		for _, r := range routes {
			if r.Protocol == host.RouteProtocol && r.Dst.Bits() > 0 {
				add(r.Dst)
			}
		}
	}
	return out
}

// lanInterfaces returns the interfaces other than tunIf with an address:
// the ones a site's traffic enters and leaves by.
func lanInterfaces(h Host, tunIf string) []string {
	addrs, err := h.Addrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if a.Dev != tunIf && a.Dev != "lo" && !slices.Contains(out, a.Dev) {
			out = append(out, a.Dev)
		}
	}
	slices.Sort(out)
	return out
}
