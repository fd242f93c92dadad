package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	xproxy "golang.org/x/net/proxy"
)

// loopNet is a Network on the host's loopback that records what it was
// asked for: a stand-in for the tunnel (its destinations, RFC 5737
// addresses, are served by loopback listeners at the same port).
type loopNet struct {
	name string
	mu   sync.Mutex
	tcp  []netip.AddrPort
	udp  int
}

func (n *loopNet) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	n.mu.Lock()
	n.tcp = append(n.tcp, dst)
	n.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, "tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dst.Port()).String())
}

func (n *loopNet) ListenUDP() (net.PacketConn, error) {
	n.mu.Lock()
	n.udp++
	n.mu.Unlock()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	return &rewriteUDP{c}, nil
}

func (n *loopNet) dialed() []netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]netip.AddrPort(nil), n.tcp...)
}

// rewriteUDP sends a datagram for 192.0.2.x:p to 127.0.0.1:p, and names
// 127.0.0.1:p as 192.0.2.10:p in what it reads, as the tunnel would.
type rewriteUDP struct{ *net.UDPConn }

func (r *rewriteUDP) WriteTo(b []byte, a net.Addr) (int, error) {
	ap := a.(*net.UDPAddr).AddrPort()
	return r.UDPConn.WriteToUDPAddrPort(b, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()))
}

func (r *rewriteUDP) ReadFrom(b []byte) (int, net.Addr, error) {
	n, ap, err := r.UDPConn.ReadFromUDPAddrPort(b)
	return n, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), ap.Port())), err
}

// splitRouter sends 192.0.2.0/24 to tunnel, the rest to direct.
type splitRouter struct{ tunnel, direct *loopNet }

func (r splitRouter) Route(a netip.Addr) Network {
	if netip.MustParsePrefix("192.0.2.0/24").Contains(a) {
		return r.tunnel
	}
	return r.direct
}

// echoTCP serves a TCP echo on loopback and returns its port.
func echoTCP(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// start serves s's SOCKS5 and HTTP CONNECT on loopback until the test ends.
func start(t *testing.T, s *Server) (socks, httpc string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, serve := range []func(context.Context, net.Listener) error{s.ServeSOCKS5, s.ServeHTTPConnect} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if socks == "" {
			socks = l.Addr().String()
		} else {
			httpc = l.Addr().String()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ctx, l); err != nil {
				t.Errorf("serve: %v", err)
			}
		}()
	}
	return socks, httpc
}

func newServer() (*Server, splitRouter) {
	r := splitRouter{tunnel: &loopNet{name: "tunnel"}, direct: &loopNet{name: "direct"}}
	return &Server{Router: r, Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "db.site.example" { // IPv6 first: the proxy still dials the IPv4 address
			return []netip.Addr{netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("192.0.2.10")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}}, r
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: got %q, %v; want %q", buf, err, msg)
	}
}

// TestSOCKS5Connect: a stock SOCKS5 client (x/net/proxy) reaches a
// hostname through the tunnel and a host address directly.
func TestSOCKS5Connect(t *testing.T) {
	s, r := newServer()
	socks, _ := start(t, s)
	port := echoTCP(t)
	d, err := xproxy.SOCKS5("tcp", socks, nil, xproxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial("tcp", net.JoinHostPort("db.site.example", itoa(port)))
	if err != nil {
		t.Fatalf("dial through socks5: %v", err)
	}
	roundTrip(t, c, "through the tunnel")
	c.Close()
	want := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), port)
	if got := r.tunnel.dialed(); len(got) != 1 || got[0] != want {
		t.Fatalf("tunnel dialed %v, want [%v]", got, want)
	}
	c, err = d.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		t.Fatalf("dial through socks5: %v", err)
	}
	roundTrip(t, c, "from the host")
	c.Close()
	if got := r.direct.dialed(); len(got) != 1 || got[0].Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("direct dialed %v, want 127.0.0.1", got)
	}
	if got := r.tunnel.dialed(); len(got) != 1 {
		t.Fatalf("tunnel dialed %v after a direct connection", got)
	}
}

func itoa(p uint16) string {
	return strings.TrimPrefix(netip.AddrPortFrom(netip.IPv4Unspecified(), p).String(), "0.0.0.0:")
}

// socksRequest runs a raw SOCKS5 exchange and returns the reply's code.
func socksRequest(t *testing.T, addr string, methods []byte, req []byte) (method, code byte, c net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(append([]byte{5, byte(len(methods))}, methods...))
	var m [2]byte
	if _, err := io.ReadFull(c, m[:]); err != nil {
		t.Fatalf("method reply: %v", err)
	}
	if m[1] != 0 {
		return m[1], 0, c
	}
	c.Write(req)
	var rep [4]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		t.Fatalf("reply: %v", err)
	}
	n := 4 + 2
	if rep[3] == atypIPv6 {
		n = 16 + 2
	}
	io.ReadFull(c, make([]byte, n))
	return m[1], rep[1], c
}

func connectReq(host string, port uint16) []byte {
	b := []byte{5, cmdConnect, 0, atypDomain, byte(len(host))}
	b = append(b, host...)
	return binary.BigEndian.AppendUint16(b, port)
}

// TestSOCKS5Errors: the replies a client sees for what cannot be done.
func TestSOCKS5Errors(t *testing.T) {
	s, _ := newServer()
	socks, _ := start(t, s)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	if m, _, _ := socksRequest(t, socks, []byte{2}, nil); m != methodNoneUsable {
		t.Errorf("username/password only: method %#x, want 0xff", m)
	}
	if _, code, _ := socksRequest(t, socks, []byte{0}, connectReq("127.0.0.1", closed)); code != repConnectionRefused {
		t.Errorf("closed port: reply %d, want %d (connection refused)", code, repConnectionRefused)
	}
	if _, code, _ := socksRequest(t, socks, []byte{0}, connectReq("nowhere.example", 80)); code != repHostUnreachable {
		t.Errorf("unknown host: reply %d, want %d (host unreachable)", code, repHostUnreachable)
	}
	bind := connectReq("127.0.0.1", 80)
	bind[1] = 2
	if _, code, _ := socksRequest(t, socks, []byte{0}, bind); code != repCommandNotSupp {
		t.Errorf("BIND: reply %d, want %d", code, repCommandNotSupp)
	}
	if _, code, _ := socksRequest(t, socks, []byte{0}, []byte{5, 1, 0, 9, 0, 0}); code != repAddrTypeNotSupp {
		t.Errorf("address type 9: reply %d, want %d", code, repAddrTypeNotSupp)
	}
}

// TestSOCKS5UDPAssociate: a datagram for a tunnel address goes out on the
// tunnel's socket and its reply comes back naming the tunnel address; one
// from another address than the client's TCP connection's is dropped.
func TestSOCKS5UDPAssociate(t *testing.T) {
	s, r := newServer()
	socks, _ := start(t, s)
	echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			echo.WriteToUDPAddrPort(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	echoPort := uint16(echo.LocalAddr().(*net.UDPAddr).Port)

	c, err := net.Dial("tcp", socks)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{5, 1, 0, 5, cmdUDPAssociate, 0, atypIPv4, 0, 0, 0, 0, 0, 0})
	var rep [12]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil || rep[1] != 0 || rep[3] != repSucceeded {
		t.Fatalf("associate reply %v, %v", rep, err)
	}
	relay := netip.AddrPortFrom(netip.AddrFrom4([4]byte(rep[6:10])), binary.BigEndian.Uint16(rep[10:12]))

	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	dgram := appendAddr([]byte{0, 0, 0}, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), echoPort))
	dgram = append(dgram, "ping"...)
	if _, err := u.WriteToUDPAddrPort(dgram, relay); err != nil {
		t.Fatal(err)
	}
	u.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := u.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no reply through the relay: %v", err)
	}
	host, port, err := readAddr(bytes.NewReader(buf[3:n]))
	if err != nil || host != "192.0.2.10" || port != echoPort {
		t.Fatalf("reply from %s:%d (%v), want 192.0.2.10:%d", host, port, err, echoPort)
	}
	if got := string(buf[n-len("echo:ping") : n]); got != "echo:ping" {
		t.Fatalf("reply payload %q", got)
	}
	r.tunnel.mu.Lock()
	tunnelSockets := r.tunnel.udp
	r.tunnel.mu.Unlock()
	if tunnelSockets != 1 {
		t.Fatalf("tunnel UDP sockets %d, want 1", tunnelSockets)
	}
	// A fragment (FRAG 1) is dropped: no reply.
	frag := append([]byte(nil), dgram...)
	frag[2] = 1
	u.WriteToUDPAddrPort(frag, relay)
	u.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := u.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatal("a fragment was relayed")
	}
}

// TestHTTPConnect: CONNECT to a tunnel hostname works and carries bytes
// the client sent with its request; other methods get 405, a dial
// failure 502.
func TestHTTPConnect(t *testing.T) {
	s, r := newServer()
	_, httpc := start(t, s)
	port := echoTCP(t)
	c, err := net.Dial("tcp", httpc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "CONNECT db.site.example:"+itoa(port)+" HTTP/1.1\r\nHost: db.site.example:"+itoa(port)+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	io.WriteString(c, "hello")
	got := make([]byte, 5)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "hello" {
		t.Fatalf("through CONNECT: %q %v", got, err)
	}
	if d := r.tunnel.dialed(); len(d) != 1 || d[0].Addr() != netip.MustParseAddr("192.0.2.10") {
		t.Fatalf("tunnel dialed %v", d)
	}
	for req, want := range map[string]int{
		"GET http://db.site.example/ HTTP/1.1\r\nHost: db.site.example\r\n\r\n":     405,
		"CONNECT nowhere.example:443 HTTP/1.1\r\nHost: nowhere.example:443\r\n\r\n": 502,
		"CONNECT db.site.example HTTP/1.1\r\nHost: db.site.example\r\n\r\n":         400,
	} {
		c, err := net.Dial("tcp", httpc)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode != want {
			t.Errorf("%q: %v %v, want %d", req, resp, err, want)
		}
	}
}

// TestServeStops: ending the context ends Serve and the connections it
// carries.
func TestServeStops(t *testing.T) {
	s, _ := newServer()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.ServeSOCKS5(ctx, l) }()
	port := echoTCP(t)
	d, _ := xproxy.SOCKS5("tcp", l.Addr().String(), nil, xproxy.Direct)
	c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "x")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the proxied connection survived Serve")
	}
}

// reset closes c with a reset (SetLinger(0)), as a peer that aborts does.
func reset(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestSpliceEnds: Splice passes a clean end on as an end and an abort (a
// reset) on as an abort, in both directions: a peer never reads a reset
// stream as a complete one.
func TestSpliceEnds(t *testing.T) {
	cases := []struct {
		name string
		// client and server act on their ends after the client sent
		// "hello"; each returns what it read to the end and how it ended.
		client, server func(t *testing.T, c net.Conn) (string, error)
		wantClient     string
		wantClientErr  error // nil: a clean EOF
		wantServer     string
		wantServerErr  error
	}{
		{
			name: "server closes",
			client: func(t *testing.T, c net.Conn) (string, error) {
				b, err := io.ReadAll(c)
				return string(b), err
			},
			server: func(t *testing.T, c net.Conn) (string, error) {
				b := make([]byte, 5)
				_, err := io.ReadFull(c, b)
				io.WriteString(c, "bye")
				c.Close()
				return string(b), err
			},
			wantClient: "bye", wantServer: "hello",
		},
		{
			name: "server resets",
			client: func(t *testing.T, c net.Conn) (string, error) {
				b, err := io.ReadAll(c)
				return string(b), err
			},
			server: func(t *testing.T, c net.Conn) (string, error) {
				b := make([]byte, 5)
				_, err := io.ReadFull(c, b)
				reset(t, c)
				return string(b), err
			},
			wantClientErr: syscall.ECONNRESET, wantServer: "hello",
		},
		{
			name: "client resets",
			client: func(t *testing.T, c net.Conn) (string, error) {
				time.Sleep(50 * time.Millisecond) // "hello" on its way through the splice
				reset(t, c)
				return "", nil
			},
			server: func(t *testing.T, c net.Conn) (string, error) {
				b, err := io.ReadAll(c)
				return string(b), err
			},
			wantServer: "hello", wantServerErr: syscall.ECONNRESET,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, front := listen(t), listen(t)
			type end struct {
				got string
				err error
			}
			atServer := make(chan end, 1)
			go func() {
				c, err := srv.Accept()
				if err != nil {
					atServer <- end{err: err}
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				got, err := tc.server(t, c)
				atServer <- end{got, err}
			}()
			spliced := make(chan struct{})
			go func() {
				defer close(spliced)
				a, err := front.Accept()
				if err != nil {
					return
				}
				b, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					a.Close()
					return
				}
				Splice(a, b)
			}()
			c, err := net.Dial("tcp", front.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, "hello"); err != nil {
				t.Fatal(err)
			}
			got, err := tc.client(t, c)
			if got != tc.wantClient || !sameEnd(err, tc.wantClientErr) {
				t.Errorf("client read %q, %v; want %q, %v", got, err, tc.wantClient, tc.wantClientErr)
			}
			c.Close()
			s := <-atServer
			if s.got != tc.wantServer || !sameEnd(s.err, tc.wantServerErr) {
				t.Errorf("server read %q, %v; want %q, %v", s.got, s.err, tc.wantServer, tc.wantServerErr)
			}
			select {
			case <-spliced:
			case <-time.After(5 * time.Second):
				t.Fatal("Splice did not return after both ends closed")
			}
		})
	}
}

// sameEnd reports whether err is want (nil: no error, a clean EOF).
func sameEnd(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

// listen listens on the loopback until the test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
