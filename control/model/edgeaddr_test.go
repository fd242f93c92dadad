package model

import (
	"net/netip"
	"testing"
)

func TestEdgeOwnAddresses(t *testing.T) {
	mpa, mpp := netip.MustParseAddr, netip.MustParsePrefix
	for _, tc := range []struct {
		name    string
		overlay netip.Prefix
		i       int
		want    netip.Addr // invalid: none
	}{
		{"first edge, default range", DefaultOverlayRange, 0, mpa("100.111.255.254")},
		{"second edge", DefaultOverlayRange, 1, mpa("100.111.255.253")},
		{"last index", DefaultOverlayRange, MaxEdges - 1, mpa("100.111.255.191")},
		{"index out of range", DefaultOverlayRange, MaxEdges, netip.Addr{}},
		{"negative index", DefaultOverlayRange, -1, netip.Addr{}},
		{"a /24", mpp("100.64.7.0/24"), 0, mpa("100.64.7.254")},
		{"too small a range", mpp("100.64.7.0/25"), 0, netip.Addr{}},
		{"an IPv6 range", mpp("2001:db8::/64"), 0, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := EdgeOwnAddress(tc.overlay, tc.i); got != tc.want {
				t.Errorf("EdgeOwnAddress(%s, %d) = %v, want %v", tc.overlay, tc.i, got, tc.want)
			}
		})
	}
	if got := EdgeOwnAddress6(1); got != mpa("fd00:5359:6564:6765::3") || !EdgeBlock6.Contains(got) {
		t.Errorf("EdgeOwnAddress6(1) = %v, want fd00:5359:6564:6765::3 inside %s", got, EdgeBlock6)
	}
	for _, tc := range []struct {
		a    string
		want bool
	}{{"100.111.255.254", true}, {"100.111.255.191", true}, {"100.111.255.190", false}, {"100.111.255.255", false}, {"100.96.0.2", false}} {
		if got := EdgeReserved(DefaultOverlayRange, mpa(tc.a)); got != tc.want {
			t.Errorf("EdgeReserved(%s) = %v, want %v", tc.a, got, tc.want)
		}
	}
}
