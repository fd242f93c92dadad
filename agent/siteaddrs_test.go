package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestSiteAddrs: only the host's addresses inside the site's prefixes are
// reported, never loopback, link-local or the overlay's, sorted.
func TestSiteAddrs(t *testing.T) {
	var addrs []netip.Prefix
	for _, a := range []string{"2001:db8:1::1/64", "10.1.0.1/24", "198.51.100.7/24", "127.0.0.1/8", "fe80::1/64", "100.96.0.9/12", "10.1.0.1/24"} {
		addrs = append(addrs, netip.MustParsePrefix(a))
	}
	site := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("2001:db8:1::/48"), netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("fe80::/10")}
	got := siteAddrs(addrs, site, model.EdgeOwned(model.DefaultOverlayRange))
	if fmt.Sprint(got) != "[10.1.0.1 2001:db8:1::1]" {
		t.Fatalf("site addresses %v", got)
	}
	if got := siteAddrs(addrs, nil, nil); got == nil || len(got) != 0 {
		t.Fatalf("without site prefixes: %#v, want empty, not nil", got)
	}
}

// TestSiteReporter: a report goes out on the first call and on a change,
// not again for the same addresses; a failed one is retried.
func TestSiteReporter(t *testing.T) {
	var sent []string
	fail := false
	r := &siteReporter{req: model.ConnectorEnrollment{PublicKey: "k", Hostname: "gw1"}, log: slog.New(slog.DiscardHandler),
		enroll: func(_ context.Context, req model.ConnectorEnrollment) error {
			if req.Hostname != "gw1" || req.PublicKey != "k" || req.SiteAddrs == nil {
				t.Fatalf("report %+v", req)
			}
			sent = append(sent, fmt.Sprint(req.SiteAddrs))
			if fail {
				return errors.New("unreachable")
			}
			return nil
		}}
	a, b := []netip.Addr{netip.MustParseAddr("10.1.0.1")}, []netip.Addr{netip.MustParseAddr("10.1.0.2")}
	ctx := context.Background()
	r.report(ctx, []netip.Addr{})
	r.report(ctx, a)
	r.report(ctx, a)
	fail = true
	r.report(ctx, b)
	fail = false
	r.report(ctx, b)
	r.report(ctx, b)
	if fmt.Sprint(sent) != "[[] [10.1.0.1] [10.1.0.2] [10.1.0.2]]" {
		t.Fatalf("reports %v", sent)
	}
}
