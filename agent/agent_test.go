package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

var (
	mpp = netip.MustParsePrefix
	mpa = netip.MustParseAddr
)

func TestConnectorRoutes(t *testing.T) {
	overlay := mpp("100.96.0.0/12")
	others := []netip.Prefix{mpp("10.0.0.0/8"), mpp("10.1.5.0/24"), mpp("10.3.0.0/16"), mpp("192.0.2.0/24"), overlay}
	addrs := []netip.Prefix{mpp("192.0.2.7/25"), mpp("198.51.100.1/24"), mpp("203.0.113.6/30")}
	edge := []netip.Addr{mpa("203.0.113.2")} // the edge's endpoint and API, reached over the WAN
	tests := []struct {
		name         string
		site, routes []netip.Prefix
		want         string
	}{
		// 10.1.5.0/24 lies in the site itself; 192.0.2.0/24 is wider than the
		// connected /25 and stays (the connected route is more specific).
		{"a site", []netip.Prefix{mpp("10.1.0.0/16")}, others,
			"[10.0.0.0/8 10.3.0.0/16 192.0.2.0/24 100.96.0.0/12]"},
		// 0.0.0.0/0 is no claim on the overlay range or the other sites.
		{"an egress site", []netip.Prefix{mpp("0.0.0.0/0"), mpp("10.1.0.0/16"), mpp("::/0")}, others,
			"[10.0.0.0/8 10.3.0.0/16 192.0.2.0/24 100.96.0.0/12]"},
		{"a CGNAT site", []netip.Prefix{mpp("100.64.0.0/10")}, []netip.Prefix{mpp("100.70.0.0/16"), overlay},
			"[100.70.0.0/16 100.96.0.0/12]"},
		// Another site's default route never takes the host's default route
		// nor the edge's address, which stay on the WAN (checked below).
		{"beside an egress site", []netip.Prefix{mpp("10.3.0.0/16")}, []netip.Prefix{mpp("0.0.0.0/0"), mpp("10.1.0.0/16"), overlay}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := model.ConnectorConfig{SitePrefixes: tc.site, Routes: tc.routes, OverlayRange: overlay}
			got := connectorRoutes(c, addrs, edge)
			if tc.want != "" && fmt.Sprint(got) != tc.want {
				t.Fatalf("connectorRoutes = %s, want %s", got, tc.want)
			}
			routed := func(a string) bool {
				for _, p := range got {
					if p.Contains(mpa(a)) {
						return true
					}
				}
				return false
			}
			for _, p := range got {
				if p.Bits() == 0 {
					t.Fatalf("%s would replace the host's default route", p)
				}
			}
			if routed("203.0.113.2") {
				t.Fatalf("connectorRoutes = %s: the edge's address goes into the TUN", got)
			}
			if tc.want == "" {
				for _, a := range []string{"198.51.100.77", "203.0.113.1", "203.0.113.3", "100.96.0.1", "10.1.2.3", "255.255.255.254"} {
					if !routed(a) {
						t.Errorf("connectorRoutes = %s: %s is not routed to the egress site", got, a)
					}
				}
			}
		})
	}
}

func TestSiteSources(t *testing.T) {
	addrs := []netip.Prefix{mpp("203.0.113.2/30"), mpp("10.1.0.1/16"), mpp("2001:db8:1::1/64"), mpp("10.1.0.9/16")}
	owned := model.EdgeOwned(mpp("100.96.0.0/12"))
	tests := []struct {
		name       string
		addrs      []netip.Prefix
		site       []netip.Prefix
		src4, src6 string
	}{
		{"a site", addrs, []netip.Prefix{mpp("10.1.0.0/16"), mpp("2001:db8:1::/48")}, "10.1.0.1", "2001:db8:1::1"},
		{"no address in the site", addrs, []netip.Prefix{mpp("10.9.0.0/16")}, "invalid IP", "invalid IP"},
		// The WAN address lies in 0.0.0.0/0 too, but the LAN's is more specific.
		{"an egress site", addrs, []netip.Prefix{mpp("0.0.0.0/0"), mpp("10.1.0.0/16"), mpp("::/0")}, "10.1.0.1", "2001:db8:1::1"},
		{"an egress site with only its default", addrs, []netip.Prefix{mpp("0.0.0.0/0")}, "203.0.113.2", "invalid IP"},
		{"never an overlay address", append([]netip.Prefix{mpp("100.96.0.5/32")}, addrs...), []netip.Prefix{mpp("0.0.0.0/0")}, "203.0.113.2", "invalid IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src4, src6 := siteSources(tc.addrs, tc.site, owned)
			if src4.String() != tc.src4 || src6.String() != tc.src6 {
				t.Fatalf("siteSources = %s, %s; want %s, %s", src4, src6, tc.src4, tc.src6)
			}
		})
	}
}

func TestClientRoutesNeverTheEdge(t *testing.T) {
	c := model.DeviceConfig{
		OverlayRange: mpp("100.96.0.0/12"),
		Edge:         model.EdgePeer{Endpoint: "203.0.113.2:51820"},
		SplitTunnel:  model.SplitTunnel{Mode: model.SplitExclude, Entries: model.DefaultExcludes()},
	}
	routes, err := clientRoutes(c, "198.51.100.7", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	covered := func(s string) bool {
		for _, p := range routes {
			if p.Contains(netip.MustParseAddr(s)) {
				return true
			}
		}
		return false
	}
	for addr, want := range map[string]bool{
		"203.0.113.2": false, "198.51.100.7": false, // the edge's endpoint and API
		"203.0.113.3": true, "100.96.0.9": true, "10.1.2.3": false, "2001:db8::1": true, "fe80::1": false,
	} {
		if covered(addr) != want {
			t.Errorf("%s routed into the tunnel = %v, want %v", addr, !want, want)
		}
	}
	c.SplitTunnel = model.SplitTunnel{Mode: model.SplitInclude, Entries: []model.SplitEntry{{Address: mpp("10.1.0.0/16")}}}
	if routes, err = clientRoutes(c, "", nil, nil); err != nil || fmt.Sprint(routes) != "[10.1.0.0/16 100.96.0.0/12]" {
		t.Fatalf("include mode routes = %v, %v", routes, err)
	}
}

func TestKeyPersists(t *testing.T) {
	dir := t.TempDir()
	k1, err := loadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := loadOrCreateKey(dir)
	if err != nil || k1 != k2 {
		t.Fatalf("the key changed across restarts: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	os.WriteFile(filepath.Join(dir, keyFile), []byte("not a key\n"), 0o600)
	if _, err := loadOrCreateKey(dir); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

func TestFollowStopsWhenRefused(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var applied []int
	calls := 0
	watch := func(ctx context.Context, etag string) (int, string, bool, error) {
		calls++
		switch calls {
		case 1:
			return 1, "a", true, nil
		case 2:
			if etag != "a" {
				t.Errorf("second poll sent etag %q, want a", etag)
			}
			return 0, "a", false, nil // nothing changed
		case 3:
			return 2, "b", true, nil
		}
		return 0, "", false, model.Errorf(model.KindUnauthorized, "revoked")
	}
	err := follow(context.Background(), log, "", watch, func(v int) { applied = append(applied, v) })
	if !errors.Is(err, model.ErrUnauthorized) || fmt.Sprint(applied) != "[1 2]" {
		t.Fatalf("follow = %v, applied %v; want the refusal after applying [1 2]", err, applied)
	}
}

func TestRetryBacksOffUntilTheEdgeAnswers(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := 0
	v, err := retry(ctx, log, func() (int, error) {
		calls++
		switch calls {
		case 1:
			return 0, errors.New("connection refused")
		case 2:
			return 0, model.Errorf(model.KindUnavailable, "etcd read revision: store: unavailable")
		}
		return 7, nil
	})
	if err != nil || v != 7 || calls != 3 {
		t.Fatalf("retry = %d, %v after %d calls", v, err, calls)
	}
	_, err = retry(ctx, log, func() (int, error) { return 0, model.Errorf(model.KindUnauthorized, "no") })
	if !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("retry on a refusal = %v, want it at once", err)
	}
}

func TestBackoffGrowsWithJitterAndResets(t *testing.T) {
	var b backoff
	seen := map[time.Duration]bool{}
	for i, ceil := range []time.Duration{minBackoff, 2 * minBackoff, 4 * minBackoff} {
		d := b.next()
		if d < ceil/2 || d >= ceil {
			t.Fatalf("wait %d = %v, want in [%v, %v)", i, d, ceil/2, ceil)
		}
	}
	for range 10 { // 1 s, 2 s, 4 s, 8 s, then the cap
		b.next()
	}
	for range 50 {
		d := b.next()
		if d < maxBackoff/2 || d >= maxBackoff {
			t.Fatalf("capped wait = %v, want in [%v, %v)", d, maxBackoff/2, maxBackoff)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 capped waits took only %d distinct values: no jitter", len(seen))
	}
	b.reset()
	if d := b.next(); d >= minBackoff {
		t.Errorf("after reset the wait is %v, want < %v", d, minBackoff)
	}
}
