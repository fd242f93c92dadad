package masque

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/switchyard/switchyard/internal/packettest"
	"github.com/switchyard/switchyard/internal/testpki"
)

// testHandler accepts the bearer "good" and echoes every packet back with
// source and destination swapped.
type testHandler struct {
	grant  Grant
	opened chan []netip.Prefix // the agent's advertised routes, per session
	closed chan *Session
	served chan *Session // the edge's side of each session, if not nil
}

func (h *testHandler) Authenticate(r *http.Request) (Grant, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer good":
		return h.grant, nil
	case "Bearer revoked":
		return Grant{}, ErrForbidden
	}
	return Grant{}, ErrUnauthorized
}

func (h *testHandler) Open(s *Session, g Grant, routes []netip.Prefix) (Receiver, error) {
	h.opened <- routes
	if h.served != nil {
		h.served <- s
	}
	return echo{}, nil
}

func (h *testHandler) Closed(s *Session, g Grant) { h.closed <- s }

type echo struct{}

func (echo) Receive(s *Session, bufs [][]byte) {
	for _, b := range bufs {
		pkt := b[Headroom:]
		var src [4]byte
		copy(src[:], pkt[12:16])
		copy(pkt[12:16], pkt[16:20])
		copy(pkt[16:20], src[:])
		s.WritePacket(pkt)
	}
}

// collect is an agent-side Receiver that hands packets to a channel.
type collect chan []byte

func (c collect) Receive(s *Session, bufs [][]byte) {
	for _, b := range bufs {
		c <- slices.Clone(b[Headroom:])
	}
}

var (
	site    = netip.MustParsePrefix("192.0.2.0/24")
	overlay = netip.MustParsePrefix("198.51.100.7/32")
)

func startServer(t testing.TB, g Grant) (*Server, *testHandler, *tls.Config) {
	t.Helper()
	h := &testHandler{grant: g, opened: make(chan []netip.Prefix, 4), closed: make(chan *Session, 4)}
	srv, tlsConf := startServerWith(t, h)
	return srv, h, tlsConf
}

// startServerWith serves h on loopback with a certificate from a new CA, and
// returns the TLS configuration that trusts it.
func startServerWith(t testing.TB, h Handler) (*Server, *tls.Config) {
	t.Helper()
	cert, tlsConf := testpki.Server(t)
	srv, err := NewServer(ServerConfig{Listen: "127.0.0.1:0", Certificate: cert, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, tlsConf
}

func bearer(s string) http.Header { return http.Header{"Authorization": {"Bearer " + s}} }

// ipv4 builds an IPv4/UDP packet of size bytes, at least 28, from src to dst with ttl.
func ipv4(src, dst netip.Addr, ttl uint8, size int) []byte {
	return packettest.UDP(packettest.IP{Src: src, Dst: dst, TTL: ttl}, 1000, 2000, make([]byte, size-28))
}

func TestRefusedWithoutCredential(t *testing.T) {
	srv, h, tlsConf := startServer(t, Grant{Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}})
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String()
	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"no credential", nil, http.StatusUnauthorized},
		{"wrong credential", bearer("bad"), http.StatusUnauthorized},
		{"revoked", bearer("revoked"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Dial(ctx, ClientConfig{Addr: addr, TLS: tlsConf, Header: tc.header})
			var re *RefusedError
			if !errors.As(err, &re) || re.Status != tc.status {
				t.Fatalf("Dial = %v, want a refusal with %d", err, tc.status)
			}
		})
	}
	srv.mu.Lock()
	n := len(srv.sessions)
	srv.mu.Unlock()
	if n != 0 || len(h.closed) != 0 {
		t.Errorf("%d sessions, %d closed after refusals, want none", n, len(h.closed))
	}
}

func TestRefusedWrongCA(t *testing.T) {
	srv, _, _ := startServer(t, Grant{})
	_, _, otherTLS := startServer(t, Grant{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String()
	if _, err := Dial(ctx, ClientConfig{Addr: addr, TLS: otherTLS, Header: bearer("good")}); err == nil {
		t.Fatal("Dial trusted an edge signed by another CA")
	}
}

func TestSessionCapsulesAndPackets(t *testing.T) {
	all4 := netip.MustParsePrefix("0.0.0.0/0")
	srv, h, tlsConf := startServer(t, Grant{Addresses: []netip.Prefix{overlay}, Routes: []netip.Prefix{all4}})
	h.served = make(chan *Session, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := Dial(ctx, ClientConfig{
		Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String(),
		TLS:  tlsConf, Header: bearer("good"), Routes: []netip.Prefix{site}, ExpectAddress: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cs.Addresses, []netip.Prefix{overlay}) || !slices.Equal(cs.Routes, []netip.Prefix{all4}) {
		t.Errorf("agent got addresses %v routes %v, want %v and %v", cs.Addresses, cs.Routes, overlay, all4)
	}
	if routes := <-h.opened; !slices.Equal(routes, []netip.Prefix{site}) {
		t.Errorf("edge got agent routes %v, want %v", routes, site)
	}

	got := make(collect, 16)
	done := make(chan error, 1)
	go func() { done <- cs.Serve(got) }()
	// A full-MTU packet from the agent's address to a host behind the edge
	// comes back echoed, with the TTL it had: the hop connect-ip-go counts
	// on each side is added back. (Loopback carries MTU once discovery
	// has confirmed it, on each side: each discovers its own direction.)
	edge := <-h.served
	waitMTU(t, cs.Session, MTU)
	waitMTU(t, edge, MTU)
	pkt := ipv4(overlay.Addr(), netip.MustParseAddr("203.0.113.5"), 64, MTU)
	want := slices.Clone(pkt)
	if err := cs.WritePacket(pkt); err != nil {
		t.Fatalf("WritePacket(%d bytes) = %v", len(pkt), err)
	}
	select {
	case back := <-got:
		if len(back) != len(want) || back[8] != want[8] || !slices.Equal(back[20:], want[20:]) ||
			[4]byte(back[12:16]) != [4]byte(want[16:20]) || [4]byte(back[16:20]) != [4]byte(want[12:16]) {
			t.Errorf("echo: got %d bytes ttl %d, want %d bytes ttl %d swapped", len(back), back[8], len(want), want[8])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no echo within 5 s")
	}
	// A packet as large as a whole QUIC packet cannot fit a datagram: it
	// is refused with ErrTooBig and counted.
	if err := cs.WritePacket(ipv4(overlay.Addr(), netip.MustParseAddr("203.0.113.5"), 64, maxPacketSize)); !errors.Is(err, ErrTooBig) {
		t.Errorf("WritePacket(%d bytes) = %v, want ErrTooBig", maxPacketSize, err)
	}
	if st := cs.Stats(); st.TxTooBig != 1 || st.TxErrors != 0 {
		t.Errorf("stats after a refused packet: %+v, want tx_too_big 1, tx_errors 0", st)
	}
	// QUIC's own counters: the echo arrived in a QUIC packet (with the
	// handshake's and the capsules'), and the connection has an RTT.
	if st := cs.Stats(); st.RxPackets != 1 || st.QUIC.PacketsReceived <= st.RxPackets || st.QUIC.PacketsSent == 0 ||
		st.QUIC.SmoothedRTT <= 0 || st.QUIC.CongestionWindow == 0 {
		t.Errorf("stats after one echo: %+v, want rx_packets 1, more QUIC packets received, an RTT and a window", st)
	}

	cs.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
	select {
	case <-h.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the edge never closed the session")
	}
}

func TestToRoutesMergesAndOrders(t *testing.T) {
	got := toRoutes([]netip.Prefix{
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("192.0.2.0/25"),
		netip.MustParsePrefix("192.0.2.128/25"),
		netip.MustParsePrefix("192.0.2.64/26"),
		netip.MustParsePrefix("198.51.100.0/24"),
	})
	want := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if p := fromRoutes(got); !slices.Equal(p, want) {
		t.Errorf("round trip = %v, want %v", p, want)
	}
}

// Every goroutine a server and its sessions start ends once both sides are
// closed.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, _, tlsConf := startServer(t, Grant{Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cs, err := Dial(ctx, ClientConfig{
			Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String(),
			TLS:  tlsConf, Header: bearer("good"), Routes: []netip.Prefix{site},
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cs.Serve(make(collect, 1)) }()
		cs.Close()
		<-done
		srv.Close()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// identityHandler grants every request the identity its Identity header
// names.
type identityHandler struct{ closed chan *Session }

func (h identityHandler) Authenticate(r *http.Request) (Grant, error) {
	return Grant{Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, Identity: r.Header.Get("Identity")}, nil
}

func (identityHandler) Open(*Session, Grant, []netip.Prefix) (Receiver, error) { return echo{}, nil }

func (h identityHandler) Closed(s *Session, _ Grant) { h.closed <- s }

// One identity holds at most MaxSessions sessions: one more is refused with
// 429 while another identity still gets its own, and a closed session frees
// its slot.
func TestSessionsPerIdentityBounded(t *testing.T) {
	const maxSessions = 2
	h := identityHandler{closed: make(chan *Session, 8)}
	cert, tlsConf := testpki.Server(t)
	srv, err := NewServer(ServerConfig{Listen: "127.0.0.1:0", Certificate: cert, Handler: h, MaxSessions: maxSessions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String()
	dial := func(identity string) (*ClientSession, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cs, err := Dial(ctx, ClientConfig{Addr: addr, TLS: tlsConf, Header: http.Header{"Identity": {identity}}, Routes: []netip.Prefix{site}})
		if err == nil {
			t.Cleanup(func() { cs.Close() })
		}
		return cs, err
	}
	var held []*ClientSession
	for i := range maxSessions {
		cs, err := dial("replica-a")
		if err != nil {
			t.Fatalf("session %d of replica-a: %v", i+1, err)
		}
		held = append(held, cs)
	}
	for _, tc := range []struct {
		identity string
		status   int // 0: a session
	}{
		{"replica-a", http.StatusTooManyRequests},
		{"replica-a", http.StatusTooManyRequests},
		{"replica-b", 0},
	} {
		_, err := dial(tc.identity)
		var re *RefusedError
		switch {
		case tc.status == 0 && err != nil:
			t.Fatalf("a session of %s: %v", tc.identity, err)
		case tc.status != 0 && (!errors.As(err, &re) || re.Status != tc.status):
			t.Fatalf("one session too many of %s: %v, want a refusal with %d", tc.identity, err, tc.status)
		}
	}

	held[0].Close()
	<-h.closed
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.mu.Lock()
		n := srv.held["replica-a"]
		srv.mu.Unlock()
		if n < maxSessions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica-a still counts %d sessions after one closed", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := dial("replica-a"); err != nil {
		t.Fatalf("a session of replica-a after one closed: %v", err)
	}
}

// openSession starts a server granting overlay and a default route, dials
// it as an agent routing site, and returns the server, the agent's session
// and the edge's side of it (the agent's routes already received).
func openSession(t *testing.T) (*Server, *ClientSession, *Session, *tls.Config) {
	t.Helper()
	all4 := netip.MustParsePrefix("0.0.0.0/0")
	srv, h, tlsConf := startServer(t, Grant{Addresses: []netip.Prefix{overlay}, Routes: []netip.Prefix{all4}})
	h.served = make(chan *Session, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := Dial(ctx, ClientConfig{
		Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String(),
		TLS:  tlsConf, Header: bearer("good"), Routes: []netip.Prefix{site}, ExpectAddress: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	<-h.opened
	return srv, cs, <-h.served, tlsConf
}

// TestDirectDatagramsOnRequestStream: a client's CONNECT-IP request is the
// stream the client's direct datagrams name (clientRequestStream), as the
// edge's side finds it, and each side reads what the other sends directly
// as well as what connect-ip-go sends: one wire format.
func TestDirectDatagramsOnRequestStream(t *testing.T) {
	_, cs, edge, _ := openSession(t)
	if want := datagramPrefix(clientRequestStream); !slices.Equal(edge.prefix, want) || !slices.Equal(cs.prefix, want) {
		t.Fatalf("datagram prefix: edge %x, client %x, want %x on both", edge.prefix, cs.prefix, want)
	}
	direct := cs.prefix
	got := make(collect, 16)
	go cs.Serve(got)
	for _, mode := range []struct {
		name   string
		prefix []byte
	}{{"direct", direct}, {"connect-ip-go", nil}} {
		cs.prefix = mode.prefix // no WritePacket runs meanwhile
		pkt := ipv4(overlay.Addr(), netip.MustParseAddr("203.0.113.5"), 64, 100)
		if err := cs.WritePacket(slices.Clone(pkt)); err != nil {
			t.Fatalf("%s: WritePacket = %v", mode.name, err)
		}
		select {
		case back := <-got:
			if len(back) != len(pkt) || back[8] != pkt[8] || [4]byte(back[16:20]) != [4]byte(pkt[12:16]) {
				t.Errorf("%s: echo of %d bytes ttl %d: got %d bytes ttl %d to %v", mode.name, len(pkt), pkt[8], len(back), back[8], back[16:20])
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no echo within 5 s", mode.name)
		}
	}
}

// TestUnauthenticatedConnectionClosed: a connection whose request never
// finishes its headers (so HTTP/3's idle timeout never applies, and no
// credential is ever checked) is closed after requestTimeout; an agent's
// authenticated session on another connection outlives it.
func TestUnauthenticatedConnectionClosed(t *testing.T) {
	old := requestTimeout
	requestTimeout = 300 * time.Millisecond
	t.Cleanup(func() { requestTimeout = old })
	srv, agent, _, tlsConf := openSession(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	slow := tlsConf.Clone()
	slow.NextProtos = []string{http3.NextProtoH3}
	qc, err := quic.DialAddr(ctx, addr, slow, quicConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	str, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A HEADERS frame (type 1) announcing 200 bytes, of which 3 come.
	if _, err := str.Write([]byte{0x01, 0x40, 0xc8, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-qc.Context().Done():
		var ae *quic.ApplicationError
		if err := context.Cause(qc.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(http3.ErrCodeRequestIncomplete) {
			t.Errorf("the unfinished request's connection closed with %v, want H3_REQUEST_INCOMPLETE", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a connection with an unfinished request is still open after 5 s")
	}
	time.Sleep(requestTimeout) // the agent's connection is older than the other
	select {
	case <-agent.watch.qconn.Context().Done():
		t.Fatalf("the authenticated agent's connection closed too: %v", context.Cause(agent.watch.qconn.Context()))
	default:
	}
}
