package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func TestLookup(t *testing.T) {
	site := serve(t, "127.0.0.1", func(_ string, req *dns.Msg) *dns.Msg {
		r := new(dns.Msg).SetReply(req)
		q := req.Question[0]
		if q.Name != "app.corp.example." {
			r.Rcode = dns.RcodeNameError
			return r
		}
		rr := map[uint16]string{dns.TypeA: " 60 IN A 192.0.2.10", dns.TypeAAAA: " 60 IN AAAA 2001:db8::10"}[q.Qtype]
		if rr != "" {
			a, _ := dns.NewRR(q.Name + rr)
			r.Answer = append(r.Answer, a)
		}
		return r
	})
	var tunnel countingDialer
	var hostAsked []string
	s, err := NewStub(StubConfig{
		Tunnel: tunnel.dial,
		HostLookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			hostAsked = append(hostAsked, host)
			return []netip.Addr{netip.MustParseAddr("198.51.100.1")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{site.addr}}}})
	ctx := context.Background()

	got, err := s.Lookup(ctx, "app.corp.example")
	slices.SortFunc(got, netip.Addr.Compare)
	if want := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Lookup(app.corp.example) = %v, %v; want %v", got, err, want)
	}
	_, err = s.Lookup(ctx, "gone.corp.example")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("Lookup(gone.corp.example) error %v, want not found", err)
	}
	dials := tunnel.n.Load()
	got, err = s.Lookup(ctx, "example.org")
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("198.51.100.1") {
		t.Errorf("Lookup(example.org) = %v, %v; want the host's answer", got, err)
	}
	if tunnel.n.Load() != dials || !slices.Equal(hostAsked, []string{"example.org"}) {
		t.Errorf("example.org: %d tunnel dials, host asked %v; want none and [example.org]", tunnel.n.Load()-dials, hostAsked)
	}
	if got, err := s.Lookup(ctx, "192.0.2.77"); err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("192.0.2.77") {
		t.Errorf("Lookup of a literal = %v, %v", got, err)
	}
	if st := s.Stats(); st.Tunnel != 4 || st.Host != 1 || st.Failed != 0 {
		t.Errorf("stats %+v, want 4 tunnel, 1 host", st)
	}
}
