package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/miekg/dns"
)

// Lookup returns the addresses of host with the stub's rules, for the
// userspace mode's proxies: a name a rule matches is asked (A and AAAA)
// of that rule's servers through the tunnel, any other of the host's
// resolver (StubConfig.HostLookup). An address literal is returned as it
// is.
func (s *Stub) Lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if _, servers, ok := s.table.Load().match(host); ok {
		return s.lookupTunnel(ctx, host, servers)
	}
	s.nhost.Add(1)
	var addrs []netip.Addr
	var err error
	if s.cfg.HostLookup != nil {
		addrs, err = s.cfg.HostLookup(ctx, host)
	} else {
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	if err != nil {
		s.nfailed.Add(1)
		return nil, fmt.Errorf("lookup %s on the host: %w", host, err)
	}
	if s.cfg.OnAnswer != nil && len(addrs) > 0 {
		as := make([]Answer, len(addrs))
		for i, a := range addrs {
			as[i] = Answer{Addr: a.Unmap()}
		}
		s.cfg.OnAnswer(canonical(host), as)
	}
	return addrs, nil
}

// lookupTunnel asks servers for host's A and AAAA records at once.
func (s *Stub) lookupTunnel(ctx context.Context, host string, servers []netip.AddrPort) ([]netip.Addr, error) {
	types := []uint16{dns.TypeA, dns.TypeAAAA}
	answers := make([]*dns.Msg, len(types))
	errs := make([]error, len(types))
	var wg sync.WaitGroup
	for i, t := range types {
		wg.Go(func() {
			s.ntunnel.Add(1)
			q := new(dns.Msg).SetQuestion(dns.Fqdn(host), t)
			q.SetEdns0(1232, false)
			answers[i], errs[i] = s.tunnel.forward(ctx, q, "udp", servers)
			if errs[i] != nil {
				s.nfailed.Add(1)
			}
		})
	}
	wg.Wait()
	var addrs []netip.Addr
	notFound := true
	for _, r := range answers {
		if r == nil {
			notFound = false
			continue
		}
		s.answered(host, r)
		if r.Rcode != dns.RcodeNameError && r.Rcode != dns.RcodeSuccess {
			notFound = false
		}
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					addrs = append(addrs, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA); ok {
					addrs = append(addrs, a)
				}
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lookup %s through the tunnel: %w", host, err)
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: notFound}
}
