package masque

import (
	"net/netip"
	"time"

	connectip "github.com/quic-go/connect-ip-go"
	"go4.org/netipx"
)

// capsuleTimeout bounds the wait for the peer's first capsules after the
// CONNECT-IP request succeeded.
const capsuleTimeout = 10 * time.Second

// toRoutes turns prefixes into the sorted, disjoint address ranges a
// ROUTE_ADVERTISEMENT capsule needs (RFC 9484, section 4.7.3): overlapping
// and adjacent prefixes merge, IPv4 comes first.
func toRoutes(prefixes []netip.Prefix) []connectip.IPRoute {
	var b netipx.IPSetBuilder
	for _, p := range prefixes {
		if p.IsValid() {
			b.AddPrefix(p.Masked())
		}
	}
	set, _ := b.IPSet() // the builder only fails on invalid input, which is skipped
	ranges := set.Ranges()
	out := make([]connectip.IPRoute, len(ranges))
	for i, r := range ranges {
		out[i] = connectip.IPRoute{StartIP: r.From(), EndIP: r.To()}
	}
	return out
}

// fromRoutes turns advertised address ranges back into prefixes. (netipx,
// since IPRoute.Prefixes of connect-ip-go v0.7.0 returns nothing for
// 192.0.2.0-192.0.2.255.)
func fromRoutes(routes []connectip.IPRoute) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range routes {
		out = netipx.IPRangeFrom(r.StartIP, r.EndIP).AppendPrefixes(out)
	}
	return out
}
