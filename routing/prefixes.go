package routing

import "net/netip"

// WithoutCovered returns the prefixes of routes that no prefix of keep covers
// (equals or contains). A route wider than a kept prefix stays: the kept,
// more specific prefix still wins the lookup.
func WithoutCovered(routes, keep []netip.Prefix) []netip.Prefix {
	var k Table[struct{}]
	for _, p := range keep {
		k.Insert(p, struct{}{})
	}
	out := make([]netip.Prefix, 0, len(routes))
	for _, r := range routes {
		if _, _, covered := k.t.LookupPrefixLPM(r.Masked()); !covered {
			out = append(out, r)
		}
	}
	return out
}
