package agent

import (
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestSplitRouter: the proxies' decision follows the split tunnel exactly
// as the kernel mode's routes do: in include mode only the listed prefixes
// (and the overlay) go through the tunnel; in exclude mode everything but
// the listed ones; never the edge's own address, nor loopback.
func TestSplitRouter(t *testing.T) {
	tunnel, direct := &stackNet{}, hostNet{}
	edge := model.EdgePeer{Endpoint: "203.0.113.1:51820", PublicKey: "x"}
	overlay := netip.MustParsePrefix("100.96.0.0/12")
	for _, tc := range []struct {
		mode    string
		entries []string
		through []string
		around  []string
	}{
		{model.SplitInclude, []string{"192.0.2.0/24"},
			[]string{"192.0.2.10", "100.96.0.1"},
			[]string{"198.51.100.7", "203.0.113.1", "127.0.0.1", "2001:db8::1"}},
		{model.SplitExclude, []string{"198.51.100.0/24"},
			[]string{"192.0.2.10", "100.96.0.1", "2001:db8::1", "203.0.113.2"},
			[]string{"198.51.100.7", "203.0.113.1", "127.0.0.1", "::1", "fe80::1"}},
	} {
		c := model.DeviceConfig{Edge: edge, OverlayRange: overlay, SplitTunnel: model.SplitTunnel{Mode: tc.mode}}
		for _, e := range tc.entries {
			c.SplitTunnel.Entries = append(c.SplitTunnel.Entries, model.SplitEntry{Address: netip.MustParsePrefix(e)})
		}
		routes, err := clientRoutes(c, "203.0.113.1", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := &splitRouter{tunnel: tunnel, direct: direct}
		if got := r.Route(netip.MustParseAddr("192.0.2.10")); got != direct {
			t.Fatalf("%s: before any configuration 192.0.2.10 went through the tunnel", tc.mode)
		}
		r.set(routes)
		for _, a := range tc.through {
			if r.Route(netip.MustParseAddr(a)) != tunnel {
				t.Errorf("%s %v: %s is dialed from the host, want through the tunnel", tc.mode, tc.entries, a)
			}
		}
		for _, a := range tc.around {
			if r.Route(netip.MustParseAddr(a)) != direct {
				t.Errorf("%s %v: %s goes through the tunnel, want from the host", tc.mode, tc.entries, a)
			}
		}
	}
}

// TestParseExpose: PORT[:HOST:PORT], with clear errors.
func TestParseExpose(t *testing.T) {
	for in, want := range map[string]Expose{
		"8080":              {8080, "127.0.0.1:8080"},
		"22:127.0.0.1:2222": {22, "127.0.0.1:2222"},
		"443:[::1]:8443":    {443, "[::1]:8443"},
		"80:localhost:3000": {80, "localhost:3000"},
	} {
		got, err := ParseExpose(in)
		if err != nil || got != want {
			t.Errorf("ParseExpose(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65536", "http", "22:", "22:2222", "22:host", "22::2222", "22:127.0.0.1:0", "22:127.0.0.1:x"} {
		if got, err := ParseExpose(in); err == nil {
			t.Errorf("ParseExpose(%q) = %+v, want an error", in, got)
		}
	}
}
