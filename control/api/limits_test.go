package api_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store/memstore"
)

// limitedLab is the API served as the edge serves it (api.Server's
// HTTPServer and Listener) with the test's Limits.
type limitedLab struct {
	addr  string
	url   string
	tls   *tls.Config // trusts the server
	admin *client.Client
	reg   *registry.Registry

	mu      sync.Mutex
	since   map[net.Conn]time.Time // a connection's last accept or response
	closed  int                    // connections the server closed
	longest time.Duration          // the longest one sat quiet before
	held    int                    // connections open now
	peak    int                    // the most held at once
}

// countingListener counts the connections it accepted that are not closed
// yet, in the lab: beneath the server's capping listener, so a connection
// counts until its Close, before the cap frees its slot (the server's
// ConnState hook would report the close only afterwards).
type countingListener struct {
	net.Listener
	l *limitedLab
}

func (cl countingListener) Accept() (net.Conn, error) {
	c, err := cl.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cl.l.mu.Lock()
	cl.l.held++
	cl.l.peak = max(cl.l.peak, cl.l.held)
	cl.l.mu.Unlock()
	return &countedConn{Conn: c, l: cl.l}, nil
}

type countedConn struct {
	net.Conn
	l    *limitedLab
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.held--
		c.l.mu.Unlock()
	})
	return err
}

func newLimitedLab(t testing.TB, lim api.Limits, tweak ...func(*api.Options)) *limitedLab {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: secrets{}})
	if err != nil {
		t.Fatal(err)
	}
	opts := api.Options{
		AdminTokenHash: sha256.Sum256([]byte(adminToken)),
		Edge:           api.EdgeInfo{CAPin: pki.Pin(ca.Cert), Endpoint: "192.0.2.1:51820", EdgeKey: "k"},
		Limits:         lim,
	}
	for _, f := range tweak {
		f(&opts)
	}
	s := api.NewServer(reg, opts)
	t.Cleanup(func() { s.Close() }) // after the HTTP server's
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &limitedLab{addr: ln.Addr().String(), url: "https://" + ln.Addr().String(), reg: reg,
		since: map[net.Conn]time.Time{}}
	s.SetAPIURL(l.url)
	srv := s.HTTPServer(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	srv.ConnState = l.connState
	srv.ErrorLog = log.New(io.Discard, "", 0) // handshake timeouts are the point
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(s.Listener(countingListener{ln, l}), "", "") }()
	t.Cleanup(func() { srv.Close(); <-errc })
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	// Resumed sessions over plain X25519 keep the many handshakes of
	// TestIdleConnectionsAreClosed cheap.
	l.tls = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519}, ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	if l.admin, err = client.New(l.url, adminToken, ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	return l
}

// connState records when each connection went quiet and when it closed.
func (l *limitedLab) connState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch state {
	case http.StateNew:
		l.since[c] = time.Now()
	case http.StateIdle:
		l.since[c] = time.Now()
	case http.StateClosed, http.StateHijacked:
		l.closed++
		l.longest = max(l.longest, time.Since(l.since[c]))
		delete(l.since, c)
	}
}

// counts returns the connections open now, the peak, and how many closed.
func (l *limitedLab) counts() (held, peak, closed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held, l.peak, l.closed
}

// waitClosed waits until n connections have closed, then returns the
// longest a connection sat quiet before the server closed it.
func (l *limitedLab) waitClosed(t *testing.T, n int, within time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, _, closed := l.counts()
		if closed >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server closed %d of %d quiet connections within %v", closed, n, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.longest
}

// keepAlive opens a TLS connection and sends one request without a
// credential (anyone can), leaving the connection idle in keep-alive.
func (l *limitedLab) keepAlive(t *testing.T) net.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", l.addr, l.tls)
	if err != nil {
		t.Fatal(err)
	}
	if err := request(c); err != nil {
		t.Fatal(err)
	}
	return c
}

// request sends one request without a credential on c and reads the 401.
func request(c net.Conn) error {
	if _, err := io.WriteString(c, "GET /v1/vnets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Close {
		return fmt.Errorf("GET without a credential = %s (close %v), want 401 with keep-alive", resp.Status, resp.Close)
	}
	return nil
}

// A client that sends its headers and then trickles the body is cut off by
// the read timeout, whether or not it has a credential.
func TestSlowBodyIsCutOff(t *testing.T) {
	const readTimeout = time.Second
	l := newLimitedLab(t, api.Limits{ReadTimeout: readTimeout})
	for _, tc := range []struct {
		name string
		auth string
	}{
		{"no credential", ""},
		{"admin token", "Authorization: Bearer " + adminToken + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", l.addr, l.tls)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			fmt.Fprintf(c, "POST /v1/vnets HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{", tc.auth)
			done := make(chan struct{})
			defer close(done)
			go func() { // one byte every 100 ms: 1000 s for the body
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-done:
						return
					case <-tick.C:
						if _, err := c.Write([]byte(" ")); err != nil {
							return
						}
					}
				}
			}()
			c.SetReadDeadline(start.Add(readTimeout + 5*time.Second))
			_, err = io.Copy(io.Discard, c) // a response (or none), then the close
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the server did not close a trickling request within %v: %v", readTimeout+5*time.Second, err)
			}
			t.Logf("closed after %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

// The server holds at most MaxConns connections: one more waits, without a
// TLS handshake, until a held one closes.
func TestConnectionCap(t *testing.T) {
	const maxConns = 4
	l := newLimitedLab(t, api.Limits{MaxConns: maxConns})
	var held []net.Conn
	for range maxConns {
		held = append(held, l.keepAlive(t))
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	raw, err := net.Dial("tcp", l.addr) // the kernel's accept queue takes it
	if err != nil {
		t.Fatal(err)
	}
	extra := tls.Client(raw, l.tls)
	defer extra.Close()
	handshake := make(chan error, 1)
	go func() { handshake <- extra.Handshake() }()
	select {
	case err := <-handshake:
		t.Fatalf("a connection beyond the cap of %d was served (handshake: %v)", maxConns, err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, peak, _ := l.counts(); peak != maxConns {
		t.Fatalf("the server held %d connections, want %d", peak, maxConns)
	}
	held[0].Close()
	held = held[1:]
	select {
	case err := <-handshake:
		if err != nil {
			t.Fatalf("the waiting connection's handshake: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting connection was not served after a held one closed")
	}
	if _, peak, _ := l.counts(); peak != maxConns {
		t.Fatalf("the server held %d connections, want %d", peak, maxConns)
	}
}

// Long polls and streams outlive the read and write timeouts, over HTTP/1.1
// and HTTP/2: a connector's configuration watch answers 304 after its wait
// and delivers a change, and the change feed and a flow log tail deliver
// objects that come later than the timeouts.
func TestLongPollsOutliveTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const later = 1200 * time.Millisecond // 4 timeouts
	flowAt := func(port uint16) model.FlowRecord {
		return model.FlowRecord{Event: "start", Src: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)}
	}
	l := newLimitedLab(t, api.Limits{ReadTimeout: timeout, WriteTimeout: timeout}, func(o *api.Options) {
		o.FlowLog = func(ctx context.Context, _ model.FlowFilter, _ int, follow bool, emit func(model.FlowRecord) error) error {
			if err := emit(flowAt(1)); err != nil {
				return err
			}
			select {
			case <-time.After(later):
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := emit(flowAt(2)); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err()
		}
	})
	ctx := context.Background()
	created, err := l.admin.CreateTunnel(ctx, "fra")
	if err != nil {
		t.Fatal(err)
	}
	agent, _, err := client.NewConnector(created.Token)
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := agent.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: wgKey(), Hostname: "gw-fra"})
	if err != nil {
		t.Fatal(err)
	}
	configPath := "/v1/agent/connectors/" + enrolled.Connector.ID.String() + "/config"

	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: l.tls.Clone(), ForceAttemptHTTP2: proto == "h2"}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			get := func(ctx context.Context, path, bearer, etag string) *http.Response {
				t.Helper()
				req, _ := http.NewRequestWithContext(ctx, "GET", l.url+path, nil)
				req.Header.Set("Authorization", "Bearer "+bearer)
				if etag != "" {
					req.Header.Set("If-None-Match", etag)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Proto != map[string]string{"http/1.1": "HTTP/1.1", "h2": "HTTP/2.0"}[proto] {
					t.Fatalf("response over %s, want %s", resp.Proto, proto)
				}
				return resp
			}

			// The configuration long poll: 304 after the wait, then a change.
			resp := get(ctx, configPath, created.Token, "")
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			tag := resp.Header.Get("ETag")
			start := time.Now()
			resp = get(ctx, configPath+"?wait=1", created.Token, tag)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotModified || time.Since(start) < time.Second {
				t.Fatalf("long poll without a change = %s after %v, want 304 after 1s", resp.Status, time.Since(start))
			}
			route := netip.MustParsePrefix(map[string]string{"http/1.1": "10.1.0.0/16", "h2": "10.2.0.0/16"}[proto])
			go func() {
				time.Sleep(later)
				l.admin.AddRoute(ctx, model.NewRoute{Network: route, Tunnel: "fra"})
			}()
			resp = get(ctx, configPath+"?wait=10", created.Token, tag)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), route.String()) {
				t.Fatalf("long poll with a change after %v = %s %q, %v", later, resp.Status, body, err)
			}

			// The change feed: a tunnel created after the timeouts.
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			rev, err := l.reg.Rev(ctx)
			if err != nil {
				t.Fatal(err)
			}
			resp = get(sctx, fmt.Sprintf("/v1/watch?after=%d", rev), adminToken, "")
			defer resp.Body.Close()
			time.Sleep(later)
			if _, err := l.admin.CreateTunnel(ctx, "t-"+strings.ReplaceAll(proto, "/", "")); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			if !sc.Scan() || !strings.Contains(sc.Text(), `"tunnels"`) {
				t.Fatalf("change feed after %v: %q, %v", later, sc.Text(), sc.Err())
			}

			// The flow log tail: a record that comes after the timeouts.
			resp = get(sctx, "/v1/flows?follow=true", adminToken, "")
			defer resp.Body.Close()
			sc = bufio.NewScanner(resp.Body)
			for _, want := range []string{"192.0.2.1:1", "192.0.2.1:2"} {
				if !sc.Scan() || !strings.Contains(sc.Text(), want) {
					t.Fatalf("flow log tail: %q, %v, want a record from %s", sc.Text(), sc.Err(), want)
				}
			}
		})
	}
}
