package routing

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestWithoutCovered(t *testing.T) {
	mpp := netip.MustParsePrefix
	routes := []netip.Prefix{mpp("10.0.0.0/8"), mpp("10.1.0.0/16"), mpp("10.1.2.0/24"), mpp("10.3.0.0/16"), mpp("100.96.0.0/12"), mpp("2001:db8:1::/48")}
	keep := []netip.Prefix{mpp("10.1.0.0/16"), mpp("192.0.2.0/24"), mpp("2001:db8::/32")}
	got := fmt.Sprint(WithoutCovered(routes, keep))
	want := "[10.0.0.0/8 10.3.0.0/16 100.96.0.0/12]"
	if got != want {
		t.Fatalf("WithoutCovered = %s, want %s", got, want)
	}
	if got := WithoutCovered(routes, nil); len(got) != len(routes) {
		t.Fatalf("nothing kept: got %v", got)
	}
}

func TestExcluding(t *testing.T) {
	mpp, mpa := netip.MustParsePrefix, netip.MustParseAddr
	tests := []struct {
		name   string
		routes []netip.Prefix
		never  []netip.Addr
		want   string
	}{
		{"nothing to exclude", []netip.Prefix{mpp("10.3.0.0/16"), mpp("100.96.0.0/12")}, []netip.Addr{mpa("203.0.113.2")},
			"[10.3.0.0/16 100.96.0.0/12]"},
		{"defaults split in halves", []netip.Prefix{mpp("0.0.0.0/0"), mpp("::/0")}, nil,
			"[0.0.0.0/1 128.0.0.0/1 ::/1 8000::/1]"},
		{"an address punched out", []netip.Prefix{mpp("198.51.100.0/24"), mpp("10.3.0.0/16")}, []netip.Addr{mpa("198.51.100.128")},
			"[198.51.100.0/25 198.51.100.129/32 198.51.100.130/31 198.51.100.132/30 198.51.100.136/29 198.51.100.144/28 198.51.100.160/27 198.51.100.192/26 10.3.0.0/16]"},
		{"a host route removed", []netip.Prefix{mpp("203.0.113.2/32"), mpp("2001:db8::/32")}, []netip.Addr{mpa("203.0.113.2"), mpa("::ffff:198.51.100.1")},
			"[2001:db8::/32]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(Excluding(tc.routes, tc.never)); got != tc.want {
				t.Fatalf("Excluding = %s, want %s", got, tc.want)
			}
		})
	}
	// The default route less the edge's endpoint covers everything else.
	got := Excluding([]netip.Prefix{mpp("0.0.0.0/0")}, []netip.Addr{mpa("203.0.113.2")})
	for _, a := range []string{"0.0.0.1", "203.0.113.1", "203.0.113.3", "255.255.255.255"} {
		covered := false
		for _, p := range got {
			covered = covered || p.Contains(mpa(a))
		}
		if !covered {
			t.Errorf("%s is not covered by %v", a, got)
		}
	}
	for _, p := range got {
		if p.Contains(mpa("203.0.113.2")) || p.Bits() == 0 {
			t.Errorf("%v holds the excluded address or is a default route", p)
		}
	}
}
