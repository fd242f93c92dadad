package routing

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestSplitRoutes(t *testing.T) {
	mpp, mpa := netip.MustParsePrefix, netip.MustParseAddr
	excl := []netip.Prefix{mpp("10.0.0.0/8"), mpp("100.64.0.0/10"), mpp("192.168.0.0/16"), mpp("fe80::/10")}
	overlay := []netip.Prefix{mpp("100.96.0.0/12")}
	edge := []netip.Addr{mpa("203.0.113.10")}
	routes, err := SplitRoutes(true, excl, overlay, edge)
	if err != nil {
		t.Fatal(err)
	}
	covered := func(a netip.Addr) bool {
		for _, p := range routes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", false}, {"192.168.1.1", false}, {"100.64.0.1", false},
		{"100.96.0.7", true}, // the overlay range is routed although 100.64/10 is excluded
		{"203.0.113.10", false}, {"203.0.113.11", true},
		{"198.51.100.1", true}, {"2001:db8::1", true}, {"fe80::1", false},
	}
	for _, tc := range tests {
		if got := covered(mpa(tc.addr)); got != tc.want {
			t.Errorf("exclude mode: %s routed = %v, want %v", tc.addr, got, tc.want)
		}
	}
	// Randomized: exclude mode routes exactly the complement.
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 5000; i++ {
		a := netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		want := true
		for _, p := range excl {
			if p.Contains(a) {
				want = false
			}
		}
		if overlay[0].Contains(a) {
			want = true
		}
		if a == edge[0] {
			want = false
		}
		if covered(a) != want {
			t.Fatalf("exclude mode: %s routed = %v, want %v", a, !want, want)
		}
	}

	routes, err = SplitRoutes(false, []netip.Prefix{mpp("10.1.0.0/16"), mpp("203.0.113.0/24")}, overlay, edge)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{{"10.1.2.3", true}, {"10.2.0.1", false}, {"100.96.0.9", true}, {"203.0.113.10", false}, {"203.0.113.9", true}, {"2001:db8::1", false}} {
		if got := covered(mpa(tc.addr)); got != tc.want {
			t.Errorf("include mode: %s routed = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
