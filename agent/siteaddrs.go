package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// reportTimeout bounds one report of the host's site addresses.
const reportTimeout = 10 * time.Second

// siteAddrs picks what the edge names a connector's host at: its addresses
// inside the site's prefixes, none loopback, link-local or in owned (the
// device overlay range, the edge's addresses), sorted, at most
// model.MaxSiteAddrs. It is never nil, so that reporting it replaces what
// the registry holds.
func siteAddrs(addrs, site, owned []netip.Prefix) []netip.Addr {
	out := []netip.Addr{}
	for _, a := range addrs {
		ip := a.Addr().Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() || containsAny(owned, ip) || !containsAny(site, ip) {
			continue
		}
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	out = slices.Compact(out)
	return out[:min(len(out), model.MaxSiteAddrs)]
}

// siteReporter tells the registry the host's site addresses when they
// differ from those it last told, by enrolling again (which keeps the
// connector's identity); a failed report is tried again at the next call.
type siteReporter struct {
	req      model.ConnectorEnrollment
	enroll   func(context.Context, model.ConnectorEnrollment) error
	log      *slog.Logger
	reported []netip.Addr // nil before the first report
}

// report sends addrs unless they are what was reported last.
func (r *siteReporter) report(ctx context.Context, addrs []netip.Addr) {
	if r.reported != nil && slices.Equal(r.reported, addrs) {
		return
	}
	req := r.req
	req.SiteAddrs = addrs
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	if err := r.enroll(ctx, req); err != nil {
		r.log.Warn("reporting the host's site addresses", "err", err)
		return
	}
	r.reported = addrs
	r.log.Info("reported the host's site addresses", "addrs", addrs)
}
