package dns

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// testServer is a real DNS server on loopback (UDP and TCP on one port)
// that records what it was asked.
type testServer struct {
	addr netip.AddrPort
	mu   sync.Mutex
	seen []seenQuery
}

// seenQuery is one query a testServer received.
type seenQuery struct {
	from    netip.AddrPort
	network string
	msg     *dns.Msg
}

// serve starts a testServer on host (port 0) answering with handle.
func serve(t *testing.T, host string, handle func(network string, req *dns.Msg) *dns.Msg) *testServer {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	for {
		var err error
		if pc, err = net.ListenPacket("udp", net.JoinHostPort(host, "0")); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	return serveOn(t, pc, l, handle)
}

// serveOn starts a testServer on pc and l (one address) answering with handle.
func serveOn(t *testing.T, pc net.PacketConn, l net.Listener, handle func(network string, req *dns.Msg) *dns.Msg) *testServer {
	t.Helper()
	ts := &testServer{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		network := "udp"
		if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
			network = "tcp"
		}
		from, _ := netip.ParseAddrPort(w.RemoteAddr().String())
		ts.mu.Lock()
		ts.seen = append(ts.seen, seenQuery{from: from, network: network, msg: req.Copy()})
		ts.mu.Unlock()
		if r := handle(network, req); r != nil {
			w.WriteMsg(r)
		}
	})
	srvs := []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}}
	var wg sync.WaitGroup
	for _, s := range srvs {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		wg.Go(func() { s.ActivateAndServe() })
		<-started
	}
	t.Cleanup(func() {
		for _, s := range srvs {
			s.Shutdown()
		}
		wg.Wait()
	})
	return ts
}

// queries returns what ts was asked.
func (ts *testServer) queries() []seenQuery {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]seenQuery(nil), ts.seen...)
}

// answerA answers every A question with a, echoing the query's OPT.
func answerA(a string) func(string, *dns.Msg) *dns.Msg {
	return func(_ string, req *dns.Msg) *dns.Msg {
		r := new(dns.Msg).SetReply(req)
		if req.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(req.Question[0].Name + " 60 IN A " + a)
			r.Answer = append(r.Answer, rr)
		}
		if opt := req.IsEdns0(); opt != nil {
			r.Extra = append(r.Extra, opt)
		}
		return r
	}
}

// countingDialer is a Dialer on the host's sockets that counts its dials.
type countingDialer struct{ n atomic.Int64 }

func (c *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.n.Add(1)
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// newTestStub starts a stub on loopback with tunnel and host dialers.
func newTestStub(t *testing.T, tunnel, host *countingDialer, hostServers ...netip.AddrPort) *Stub {
	t.Helper()
	s, err := NewStub(StubConfig{
		Listen: netip.MustParseAddrPort("127.0.0.1:0"),
		Tunnel: tunnel.dial, Host: host.dial, HostServers: hostServers,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// ask sends a question to the stub over network and returns its answer.
func ask(t *testing.T, s *Stub, network, name string, qtype uint16, edit ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	q := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	for _, e := range edit {
		e(q)
	}
	c := &dns.Client{Net: network}
	r, _, err := c.Exchange(q, s.Addr().String())
	if err != nil {
		t.Fatalf("ask %s %s: %v", network, name, err)
	}
	if r.Id != q.Id {
		t.Errorf("ask %s: answer id %d, query id %d", name, r.Id, q.Id)
	}
	return r
}

// firstA returns the first A record of r, or "".
func firstA(r *dns.Msg) string {
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}
