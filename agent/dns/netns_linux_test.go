//go:build linux

package dns

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/internal/lab"
)

// TestNetns runs the stub inside a client namespace whose overlay address
// (192.0.2.7, as on the TUN) is on a real interface, with the site's DNS
// server in another namespace, reached only by the route TunnelRoutes asks
// for: the site server sees the overlay address as the querier, and the
// queries for other names go to the host's resolver, never to the tunnel.
func TestNetns(t *testing.T) {
	l := lab.New(t)
	client, site := l.NS("client"), l.NS("site")
	cIf, _ := l.Link(client, "203.0.113.2/24", site, "203.0.113.1/24")
	overlay := netip.MustParseAddr("192.0.2.7")
	if err := client.AddAddr(cIf, "192.0.2.7/32"); err != nil {
		t.Fatal(err)
	}
	if _, err := site.Exec("ip", "addr", "add", "198.51.100.53/32", "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	if err := site.Route("add", "192.0.2.7/32", "via", "203.0.113.2"); err != nil {
		t.Fatal(err)
	}
	pc, err := site.ListenPacket("udp", "198.51.100.53:53")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := site.Listen("tcp", "198.51.100.53:53")
	if err != nil {
		t.Fatal(err)
	}
	siteDNS := serveOn(t, pc, ln, answerA("192.0.2.10"))
	if pc, err = client.ListenPacket("udp", "127.0.0.1:5353"); err != nil {
		t.Fatal(err)
	}
	if ln, err = client.Listen("tcp", "127.0.0.1:5353"); err != nil {
		t.Fatal(err)
	}
	hostDNS := serveOn(t, pc, ln, answerA("198.51.100.1"))

	cfg := Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{siteDNS.addr}}}}
	for _, p := range cfg.TunnelRoutes() { // what the client routes into its TUN
		if err := client.Route("add", p.String(), "dev", cIf); err != nil {
			t.Fatal(err)
		}
	}
	var tunnelDials, hostDials atomic.Int64
	inClient := func(n *atomic.Int64, d Dialer) Dialer {
		return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			n.Add(1)
			err = client.Do(func() error { c, err = d(ctx, network, addr); return err })
			return c, err
		}
	}
	var hd net.Dialer
	var s *Stub
	if err := client.Do(func() (err error) {
		s, err = NewStub(StubConfig{
			Listen: netip.AddrPortFrom(DefaultLoopback, 53),
			Tunnel: inClient(&tunnelDials, OverlayDialer(overlay)),
			Host:   inClient(&hostDials, hd.DialContext), HostServers: []netip.AddrPort{hostDNS.addr},
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set(cfg); err != nil {
		t.Fatal(err)
	}
	dig := func(network, name string) string { // a query from inside the client
		t.Helper()
		var r *dns.Msg
		if err := client.Do(func() (err error) {
			r, _, err = (&dns.Client{Net: network}).Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), s.Addr().String())
			return err
		}); err != nil {
			t.Fatalf("%s over %s: %v", name, network, err)
		}
		return firstA(r)
	}
	for _, network := range []string{"udp", "tcp"} {
		if got := dig(network, "app.corp.example."); got != "192.0.2.10" {
			t.Errorf("app.corp.example over %s: %q, want the site's 192.0.2.10", network, got)
		}
		if got := dig(network, "example.org."); got != "198.51.100.1" {
			t.Errorf("example.org over %s: %q, want the host resolver's 198.51.100.1", network, got)
		}
	}
	qs := siteDNS.queries()
	if len(qs) != 2 {
		t.Fatalf("the site's server was asked %d times, want 2", len(qs))
	}
	for _, q := range qs {
		if q.from.Addr() != overlay || q.msg.Question[0].Name != "app.corp.example." {
			t.Errorf("the site's server saw %s over %s from %s; want app.corp.example. from the overlay address %s",
				q.msg.Question[0].Name, q.network, q.from, overlay)
		}
	}
	for _, q := range hostDNS.queries() {
		if q.msg.Question[0].Name != "example.org." {
			t.Errorf("the host's resolver was asked %s", q.msg.Question[0].Name)
		}
	}
	if n := len(hostDNS.queries()); n != 2 {
		t.Errorf("the host's resolver was asked %d times, want 2", n)
	}
	if tunnelDials.Load() != 2 || hostDials.Load() != 2 {
		t.Errorf("%d tunnel dials and %d host dials, want 2 each: host-bound queries never take the tunnel", tunnelDials.Load(), hostDials.Load())
	}
	if st := s.Stats(); st != (Stats{Tunnel: 2, Host: 2}) {
		t.Errorf("stats %+v", st)
	}
}
