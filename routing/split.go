package routing

import (
	"fmt"
	"net/netip"

	"go4.org/netipx"
)

// SplitRoutes returns the prefixes a client routes into its tunnel. In
// exclude mode that is every address (IPv4 and IPv6) less the listed
// prefixes; in include mode, the listed prefixes. always (the overlay range)
// is routed in either mode, and never (the edge's own addresses) in neither,
// so that the tunnel's packets never loop into it.
func SplitRoutes(exclude bool, list, always []netip.Prefix, never []netip.Addr) ([]netip.Prefix, error) {
	var b netipx.IPSetBuilder
	if exclude {
		b.AddPrefix(netip.MustParsePrefix("0.0.0.0/0"))
		b.AddPrefix(netip.MustParsePrefix("::/0"))
		for _, p := range list {
			b.RemovePrefix(p)
		}
	} else {
		for _, p := range list {
			b.AddPrefix(p)
		}
	}
	for _, p := range always {
		b.AddPrefix(p)
	}
	for _, a := range never {
		b.Remove(a.Unmap())
	}
	set, err := b.IPSet()
	if err != nil {
		return nil, fmt.Errorf("compute split tunnel routes: %w", err)
	}
	return set.Prefixes(), nil
}
