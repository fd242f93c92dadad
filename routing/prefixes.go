package routing

import (
	"net/netip"

	"go4.org/netipx"
)

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

// Excluding returns routes less the addresses in never: a route that holds
// one of them is replaced by the prefixes that cover the rest of it. A
// default route (0.0.0.0/0, ::/0) comes back as its two halves, so that
// installing the result never replaces the host's own default route.
func Excluding(routes []netip.Prefix, never []netip.Addr) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(routes))
	for _, r := range routes {
		r = r.Masked()
		hit := false
		for _, a := range never {
			hit = hit || r.Contains(a.Unmap())
		}
		if !hit {
			out = append(out, halves(r)...)
			continue
		}
		var b netipx.IPSetBuilder
		b.AddPrefix(r)
		for _, a := range never {
			b.Remove(a.Unmap())
		}
		set, _ := b.IPSet() // errors only for invalid prefixes, which have none of never
		for _, p := range set.Prefixes() {
			out = append(out, halves(p)...)
		}
	}
	return out
}

// halves returns a default route as its two /1 halves, and any other prefix as itself.
func halves(p netip.Prefix) []netip.Prefix {
	if p.Bits() != 0 {
		return []netip.Prefix{p}
	}
	upper := netip.AddrFrom4([4]byte{0x80})
	if p.Addr().Is6() {
		upper = netip.AddrFrom16([16]byte{0x80})
	}
	return []netip.Prefix{netip.PrefixFrom(p.Addr(), 1), netip.PrefixFrom(upper, 1)}
}
