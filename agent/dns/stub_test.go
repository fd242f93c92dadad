package dns

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestForward(t *testing.T) {
	site := serve(t, "127.0.0.1", answerA("192.0.2.10"))
	upstream := serve(t, "127.0.0.1", answerA("198.51.100.1"))
	var tunnel, host countingDialer
	s := newTestStub(t, &tunnel, &host, upstream.addr)
	if err := s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{site.addr}}}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		toSite     bool
	}{
		{"app.corp.example", "192.0.2.10", true},
		{"APP.Corp.Example.", "192.0.2.10", true},
		{"corp.example", "192.0.2.10", true},
		{"example.org", "198.51.100.1", false},
		{"notcorp.example", "198.51.100.1", false},
	} {
		for _, network := range []string{"udp", "tcp"} {
			beforeSite, beforeUp := len(site.queries()), len(upstream.queries())
			beforeTunnel := tunnel.n.Load()
			r := ask(t, s, network, tc.name, dns.TypeA)
			if got := firstA(r); got != tc.want {
				t.Errorf("%s over %s: A %q, want %q", tc.name, network, got, tc.want)
			}
			siteAsked := len(site.queries()) - beforeSite
			upAsked := len(upstream.queries()) - beforeUp
			if tc.toSite && (siteAsked != 1 || upAsked != 0) || !tc.toSite && (siteAsked != 0 || upAsked != 1) {
				t.Errorf("%s over %s: site asked %d times, host upstream %d", tc.name, network, siteAsked, upAsked)
			}
			if !tc.toSite && tunnel.n.Load() != beforeTunnel {
				t.Errorf("%s over %s: the tunnel dialer was used for a host-bound query", tc.name, network)
			}
		}
	}
	st := s.Stats()
	if st.Tunnel != 6 || st.Host != 4 || st.Failed != 0 {
		t.Errorf("stats %+v, want 6 tunnel, 4 host, 0 failed", st)
	}
	if got := tunnel.n.Load(); got != 6 {
		t.Errorf("tunnel dials %d, want 6", got)
	}
}

func TestForwardKeepsEDNS0(t *testing.T) {
	site := serve(t, "127.0.0.1", answerA("192.0.2.10"))
	var tunnel, host countingDialer
	s := newTestStub(t, &tunnel, &host)
	s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{site.addr}}}})
	r := ask(t, s, "udp", "app.corp.example", dns.TypeA, func(q *dns.Msg) {
		q.SetEdns0(1232, true)
		opt := q.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0LOCALSTART, Data: []byte("switchyard")})
	})
	qs := site.queries()
	if len(qs) != 1 {
		t.Fatalf("site asked %d times, want 1", len(qs))
	}
	opt := qs[0].msg.IsEdns0()
	if opt == nil || opt.UDPSize() != 1232 || !opt.Do() || len(opt.Option) != 1 {
		t.Fatalf("site got OPT %v, want size 1232, DO and the local option", opt)
	}
	if l, ok := opt.Option[0].(*dns.EDNS0_LOCAL); !ok || string(l.Data) != "switchyard" {
		t.Errorf("site got option %v, want the local option", opt.Option[0])
	}
	if r.IsEdns0() == nil {
		t.Error("answer lost its OPT record")
	}
}

// silent opens a UDP socket and a TCP listener on one loopback port that
// take queries and never answer.
func silent(t *testing.T) netip.AddrPort {
	t.Helper()
	for {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		l, err := net.Listen("tcp", ap.String())
		if err != nil {
			pc.Close()
			continue
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				held = append(held, c)
			}
		})
		t.Cleanup(func() { pc.Close(); l.Close(); wg.Wait() })
		return ap
	}
}

func TestServfailWhenNoneAnswers(t *testing.T) {
	var tunnel, host countingDialer
	s := newTestStub(t, &tunnel, &host)
	s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{silent(t), silent(t), silent(t)}}}})
	for _, network := range []string{"udp", "tcp"} {
		start := time.Now()
		r := ask(t, s, network, "app.corp.example", dns.TypeA)
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("over %s: answer after %v, want under 3s", network, took)
		}
		if r.Rcode != dns.RcodeServerFailure {
			t.Errorf("over %s: rcode %s, want SERVFAIL", network, dns.RcodeToString[r.Rcode])
		}
	}
	if st := s.Stats(); st.Failed != 2 || st.Tunnel != 2 {
		t.Errorf("stats %+v, want 2 tunnel, 2 failed", st)
	}
}

func TestNextServer(t *testing.T) {
	refusing := serve(t, "127.0.0.1", func(_ string, req *dns.Msg) *dns.Msg {
		return new(dns.Msg).SetRcode(req, dns.RcodeRefused)
	})
	good := serve(t, "127.0.0.1", answerA("192.0.2.20"))
	var tunnel, host countingDialer
	s := newTestStub(t, &tunnel, &host)
	s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{silent(t), refusing.addr, good.addr}}}})
	start := time.Now()
	r := ask(t, s, "udp", "app.corp.example", dns.TypeA)
	if got := firstA(r); got != "192.0.2.20" {
		t.Errorf("A %q (rcode %s), want the third server's 192.0.2.20", got, dns.RcodeToString[r.Rcode])
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("answer after %v", took)
	}
	if n := len(refusing.queries()); n != 1 {
		t.Errorf("the refusing server was asked %d times, want 1", n)
	}
}

func TestTruncatedRetriedOverTCP(t *testing.T) {
	const records = 40 // far more than 512 bytes
	site := serve(t, "127.0.0.1", func(network string, req *dns.Msg) *dns.Msg {
		r := new(dns.Msg).SetReply(req)
		if network == "udp" {
			r.Truncated = true
			return r
		}
		for i := range records {
			rr, _ := dns.NewRR(req.Question[0].Name + " 60 IN A 192.0.2." + itoa(i+1))
			r.Answer = append(r.Answer, rr)
		}
		return r
	})
	var tunnel, host countingDialer
	s := newTestStub(t, &tunnel, &host)
	s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{site.addr}}}})
	big := func(q *dns.Msg) { q.SetEdns0(4096, false) }
	r := ask(t, s, "udp", "many.corp.example", dns.TypeA, big)
	if len(r.Answer) != records || r.Truncated {
		t.Errorf("udp answer: %d records, truncated %v; want all %d", len(r.Answer), r.Truncated, records)
	}
	var networks []string
	for _, q := range site.queries() {
		networks = append(networks, q.network)
	}
	if len(networks) != 2 || networks[0] != "udp" || networks[1] != "tcp" {
		t.Errorf("site asked over %v, want udp then tcp", networks)
	}
	// A client that takes 512 bytes gets a truncated answer, and all of it over TCP.
	r = ask(t, s, "udp", "many.corp.example", dns.TypeA)
	r.Compress = true // as it came: the wire form is compressed
	if !r.Truncated || r.Len() > dns.MinMsgSize || len(r.Answer) == records {
		t.Errorf("answer to a 512-byte client: %d bytes, %d records, truncated %v", r.Len(), len(r.Answer), r.Truncated)
	}
	if r = ask(t, s, "tcp", "many.corp.example", dns.TypeA); len(r.Answer) != records {
		t.Errorf("tcp answer: %d records, want %d", len(r.Answer), records)
	}
}

func itoa(i int) string { return netip.AddrFrom4([4]byte{0, 0, 0, byte(i)}).String()[6:] }

func TestSetSwitchesRules(t *testing.T) {
	a := serve(t, "127.0.0.1", answerA("192.0.2.1"))
	b := serve(t, "127.0.0.1", answerA("192.0.2.2"))
	upstream := serve(t, "127.0.0.1", answerA("198.51.100.1"))
	var tunnel, host countingDialer
	s := newTestStub(t, &tunnel, &host, upstream.addr)
	if got := firstA(ask(t, s, "udp", "app.corp.example", dns.TypeA)); got != "198.51.100.1" {
		t.Errorf("without rules: %q, want the host's answer", got)
	}
	s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{a.addr}}}})
	if got := firstA(ask(t, s, "udp", "app.corp.example", dns.TypeA)); got != "192.0.2.1" {
		t.Errorf("vnet a: %q", got)
	}
	s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{b.addr}}}})
	if got := firstA(ask(t, s, "udp", "app.corp.example", dns.TypeA)); got != "192.0.2.2" {
		t.Errorf("vnet b: %q", got)
	}
	if err := s.Set(Config{Resolvers: []Rule{{Domain: "Bad..Domain", Servers: []netip.AddrPort{a.addr}}}}); err == nil {
		t.Error("a bad rule was taken")
	}
	if got := firstA(ask(t, s, "udp", "app.corp.example", dns.TypeA)); got != "192.0.2.2" {
		t.Errorf("after a refused set: %q, want vnet b's rules kept", got)
	}
}

func TestSetUnderLoad(t *testing.T) {
	a := serve(t, "127.0.0.1", answerA("192.0.2.1"))
	b := serve(t, "127.0.0.1", answerA("192.0.2.2"))
	var tunnel, host countingDialer
	s := newTestStub(t, &tunnel, &host)
	ca := Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{a.addr}}}}
	cb := Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{b.addr}}}}
	s.Set(ca)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			s.Set([]Config{ca, cb}[i%2])
		}
	})
	for range 50 {
		if got := firstA(ask(t, s, "udp", "app.corp.example", dns.TypeA)); got != "192.0.2.1" && got != "192.0.2.2" {
			t.Errorf("answer %q mid-switch", got)
		}
	}
	cancel()
	wg.Wait()
}

func TestZoneGoesToServer(t *testing.T) {
	edge := serve(t, "127.0.0.1", answerA("100.96.0.7"))
	other := serve(t, "127.0.0.1", answerA("192.0.2.9"))
	var tunnel, host countingDialer
	s := newTestStub(t, &tunnel, &host)
	// The zone's server answers on port 53; point a dialer rewriting that port at the test server.
	s.tunnel.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != "127.0.0.1:53" {
			t.Errorf("zone query dialed %s, want 127.0.0.1:53", addr)
		}
		return tunnel.dial(ctx, network, edge.addr.String())
	}
	if err := s.Set(Config{
		Resolvers: []Rule{{Domain: "sy.internal", Servers: []netip.AddrPort{other.addr}}},
		Zone:      "sy.internal", Server: netip.MustParseAddr("127.0.0.1"),
	}); err != nil {
		t.Fatal(err)
	}
	if got := firstA(ask(t, s, "udp", "laptop-7.sy.internal", dns.TypeA)); got != "100.96.0.7" {
		t.Errorf("laptop-7.sy.internal: %q, want the zone server's answer", got)
	}
	if n := len(other.queries()); n != 0 {
		t.Errorf("a resolver rule for the zone's domain was asked %d times; the zone wins", n)
	}
}

func TestCloseEndsQueriesInFlight(t *testing.T) {
	var tunnel, host countingDialer
	s, err := NewStub(StubConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Tunnel: tunnel.dial, Host: host.dial})
	if err != nil {
		t.Fatal(err)
	}
	s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{silent(t)}}}})
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	go c.Exchange(new(dns.Msg).SetQuestion("app.corp.example.", dns.TypeA), s.Addr().String())
	for s.Stats().Tunnel == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("close took %v with a query in flight, want it ended at once", took)
	}
}

// fakeWriter is a dns.ResponseWriter for a query from remote.
type fakeWriter struct {
	dns.ResponseWriter
	remote net.Addr
	got    *dns.Msg
}

func (w *fakeWriter) LocalAddr() net.Addr       { return &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr      { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error { w.got = m; return nil }

// TestRefusesOtherHosts: a query that reaches the stub from another host
// (a site's host sending to the overlay IP through the tunnel) is refused
// and forwarded nowhere; the host's own queries are answered.
func TestRefusesOtherHosts(t *testing.T) {
	upstream := serve(t, "127.0.0.1", answerA("198.51.100.1"))
	var tunnel, host countingDialer
	s := newTestStub(t, &tunnel, &host, upstream.addr)
	for _, tc := range []struct {
		from  string
		rcode int
	}{
		{"198.51.100.20:40000", dns.RcodeRefused},
		{"127.0.0.1:40000", dns.RcodeSuccess},
	} {
		req := new(dns.Msg).SetQuestion("example.org.", dns.TypeA)
		w := &fakeWriter{remote: net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.from))}
		before := len(upstream.queries())
		s.ServeDNS(w, req)
		if w.got == nil || w.got.Rcode != tc.rcode {
			t.Fatalf("query from %s: answer %v, want rcode %s", tc.from, w.got, dns.RcodeToString[tc.rcode])
		}
		if asked := len(upstream.queries()) - before; (tc.rcode == dns.RcodeRefused) != (asked == 0) {
			t.Errorf("query from %s: the host upstream was asked %d times", tc.from, asked)
		}
	}
	if st := s.Stats(); st.Refused != 1 || st.Host != 1 {
		t.Errorf("stats %+v, want 1 refused, 1 host", st)
	}
}
