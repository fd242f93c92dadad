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
