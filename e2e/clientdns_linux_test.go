//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/internal/lab"
)

// dnsServer is a miekg/dns server run by the test inside a namespace: it
// answers A questions from its table (NXDOMAIN otherwise) and logs who asked.
type dnsServer struct {
	mu   sync.Mutex
	seen []dnsQuery
	a    map[string]string // name (with the dot) → IPv4
}

// dnsQuery is one question a dnsServer was asked.
type dnsQuery struct {
	name string
	from netip.Addr
}

// serveDNS starts a dnsServer on addr (UDP and TCP) inside ns.
func serveDNS(t *testing.T, ns *lab.NS, addr string, a map[string]string) *dnsServer {
	t.Helper()
	s := &dnsServer{a: a}
	pc, err := ns.ListenPacket("udp", addr)
	must(t, err)
	ln, err := ns.Listen("tcp", addr)
	must(t, err)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: ln, Handler: s}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

// ServeDNS implements dns.Handler.
func (s *dnsServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	r := new(dns.Msg).SetReply(req)
	q := req.Question[0]
	from, _ := netip.ParseAddrPort(w.RemoteAddr().String())
	s.mu.Lock()
	s.seen = append(s.seen, dnsQuery{name: q.Name, from: from.Addr().Unmap()})
	ip, ok := s.a[strings.ToLower(q.Name)]
	s.mu.Unlock()
	switch {
	case !ok:
		r.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA:
		rr, _ := dns.NewRR(q.Name + " 30 IN A " + ip)
		r.Answer = append(r.Answer, rr)
	}
	w.WriteMsg(r)
}

// asked returns the sources that asked for name (with the dot).
func (s *dnsServer) asked(name string) []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.Addr
	for _, q := range s.seen {
		if q.name == name {
			out = append(out, q.from)
		}
	}
	return out
}

// total is how many questions the server was asked.
func (s *dnsServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// stubOf reads the nameserver the client wrote into resolv.conf.
func stubOf(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" {
			return net.JoinHostPort(f[1], "53")
		}
	}
	t.Fatalf("%s names no nameserver:\n%s", path, data)
	return ""
}

// digA asks server from inside ns for name's A record and returns the
// first address of the answer ("" when none) and its rcode.
func digA(ns *lab.NS, server, name string) (string, int, error) {
	m, err := resolve(ns, server, name)
	if err != nil {
		return "", 0, err
	}
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String(), m.Rcode, nil
		}
	}
	return "", m.Rcode, nil
}

// metric reads one sample of the client's /metrics from inside ns.
func metric(t *testing.T, ns *lab.NS, addr, sample string) float64 {
	t.Helper()
	c, err := ns.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	body, err := io.ReadAll(c)
	must(t, err)
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			must(t, err)
			return v
		}
	}
	t.Fatalf("no %s in the client's metrics:\n%s", sample, body)
	return 0
}

// dnsWorld is the lab for the client's DNS: site A's host 10.1.2.3 serves
// HTTP and, on 10.1.2.53, corp.example; the laptop has its host resolver
// on 127.0.0.1:53 (outside the tunnel) and its own resolv.conf naming it;
// the wan router holds a server on 198.51.100.80 that the laptop reaches
// outside the tunnel.
type dnsWorld struct {
	*world
	site, hostResolver *dnsServer
	resolvConf         string
	original           []byte
}

func newDNSWorld(t *testing.T) *dnsWorld {
	w := &dnsWorld{world: newWorld(t)}
	must(t, w.hosta.AddAddr(lanIf(t, w.hosta, "10."), "10.1.2.53/16"))
	w.wan.MustExec(t, "ip", "addr", "add", "198.51.100.80/32", "dev", "lo")
	w.site = serveDNS(t, w.hosta, "10.1.2.53:53", map[string]string{
		"app.corp.example.": "10.1.2.3", "db.corp.example.": "10.1.2.3",
	})
	w.hostResolver = serveDNS(t, w.laptop, "127.0.0.1:53", map[string]string{
		"www.outside.example.": "198.51.100.80", "app.corp.example.": "192.0.2.66", // the public view: never asked through the stub
	})
	w.resolvConf = filepath.Join(w.dir, "laptop-resolv.conf")
	w.original = []byte("# the laptop's own\nnameserver 127.0.0.1\nsearch lab.example\noptions edns0\n")
	must(t, os.WriteFile(w.resolvConf, w.original, 0o644))
	w.startEdge()
	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	tok := w.tunnelToken("site-a")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.1.0.0/16", "site-a")
	w.cli("dns", "resolver", "add", "corp.example", "10.1.2.53")
	w.startConnector(w.gwa, "gwa", tok)
	return w
}

// httpByName GETs url from inside ns, resolving its host with stub (a Go
// resolver that asks only the client's stub), and returns the body.
func httpByName(ns *lab.NS, stub, url string) (string, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return ns.Dial(network, stub)
	}}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := r.LookupNetIP(ctx, "ip4", host)
		if err != nil {
			return nil, err
		}
		return ns.Dial("tcp", net.JoinHostPort(ips[0].String(), port))
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestClientDNSE2E: a client (kernel mode, its resolv.conf a file of the
// test) installs its stub there; app.corp.example gets the site's private
// answer, which the site's server was asked by the laptop's overlay IP; a
// name the host resolver answers never takes the tunnel (the site's
// server never sees it; the stub's counters say host); an HTTP GET by
// name reaches site A from the overlay IP; after the client stops,
// resolv.conf is back byte for byte.
func TestClientDNSE2E(t *testing.T) {
	w := newDNSWorld(t)
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello %s from %s", r.Host, r.RemoteAddr)
	})}
	ln, err := w.hosta.Listen("tcp", "10.1.2.3:8080")
	must(t, err)
	go srv.Serve(ln)
	defer srv.Close()

	client, laptopIP := w.startClient(w.laptop, "laptop", "--resolv-conf", w.resolvConf, "--metrics-listen", "127.0.0.1:9464")
	must(t, client.WaitFor("dns rules set", 10*time.Second))
	now, err := os.ReadFile(w.resolvConf)
	must(t, err)
	if !strings.Contains(string(now), "nameserver 127.2.0.53") || strings.Contains(string(now), "nameserver 127.0.0.1") ||
		!strings.Contains(string(now), "search lab.example") {
		t.Fatalf("resolv.conf while the client runs:\n%s", now)
	}
	stub := stubOf(t, w.resolvConf)

	var got string
	err = eventually(10*time.Second, func() error {
		var rcode int
		var err error
		if got, rcode, err = digA(w.laptop, stub, "app.corp.example"); err == nil && got != "10.1.2.3" {
			err = fmt.Errorf("answer %q (rcode %d)", got, rcode)
		}
		return err
	})
	if err != nil {
		t.Fatalf("app.corp.example through the stub: %v, want the site's 10.1.2.3", err)
	}
	from := w.site.asked("app.corp.example.")
	if len(from) == 0 || from[0].String() != laptopIP {
		t.Fatalf("the site's server saw app.corp.example. from %v, want the laptop's overlay IP %s", from, laptopIP)
	}
	if n := len(w.hostResolver.asked("app.corp.example.")); n != 0 {
		t.Fatalf("the host resolver was asked app.corp.example %d times", n)
	}

	siteBefore, hostBefore := w.site.total(), len(w.hostResolver.asked("www.outside.example."))
	if got, _, err := digA(w.laptop, stub, "www.outside.example"); err != nil || got != "198.51.100.80" {
		t.Fatalf("www.outside.example through the stub: %q, %v; want the host resolver's 198.51.100.80", got, err)
	}
	if w.site.total() != siteBefore || len(w.site.asked("www.outside.example.")) != 0 {
		t.Fatal("the site's server was asked a name the host resolver answers")
	}
	if n := len(w.hostResolver.asked("www.outside.example.")) - hostBefore; n != 1 {
		t.Fatalf("the host resolver was asked www.outside.example %d times, want 1", n)
	}
	if from := w.hostResolver.asked("www.outside.example."); from[0].String() != "127.0.0.1" {
		t.Fatalf("the host resolver was asked from %v, not from the host itself", from)
	}
	if v := metric(t, w.laptop, "127.0.0.1:9464", `switchyard_agent_dns_queries_total{class="host",role="client"}`); v < 1 {
		t.Errorf("host queries counted: %v", v)
	}
	if v := metric(t, w.laptop, "127.0.0.1:9464", `switchyard_agent_dns_queries_total{class="tunnel",role="client"}`); v < 1 {
		t.Errorf("tunnel queries counted: %v", v)
	}

	body, err := httpByName(w.laptop, stub, "http://app.corp.example:8080/")
	if err != nil {
		t.Fatalf("GET http://app.corp.example:8080/ by name: %v", err)
	}
	if want := "hello app.corp.example:8080 from " + laptopIP + ":"; !strings.HasPrefix(body, want) {
		t.Fatalf("GET by name: %q, want %q...", body, want)
	}

	must(t, client.Stop())
	after, err := os.ReadFile(w.resolvConf)
	must(t, err)
	if string(after) != string(w.original) {
		t.Fatalf("resolv.conf after the client stopped:\n%s\nwant the original:\n%s", after, w.original)
	}
	// "dev sy1" as a whole word: the lab's own link names (sy152d-...) may hold "sy1".
	if out, _ := w.laptop.Exec("ip", "route", "show", "table", "all"); regexp.MustCompile(`\bdev sy1\b`).MatchString(out) {
		t.Fatalf("routes left through sy1:\n%s", out)
	}
}

// TestDomainSplitE2E: in Include mode with only app.corp.example listed,
// that name's address is routed into the tunnel once the stub relayed it
// (before, the laptop had no route to it: it goes out to the wan) and the
// site host sees the overlay IP; a name the host resolver answers stays
// outside (the wan's server sees the laptop's underlay address). In
// Exclude mode with outside.example listed, the reverse: its address, in
// the tunnel before, goes around it once resolved, while
// app.corp.example's goes through.
func TestDomainSplitE2E(t *testing.T) {
	w := newDNSWorld(t)
	const underlay = "203.0.113.18" // the laptop's wan address
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "--domain", "app.corp.example")
	w.hosta.Echo(t, "10.1.2.3:7000")
	w.wan.Echo(t, "198.51.100.80:7000")
	client, laptopIP := w.startClient(w.laptop, "laptop", "--resolv-conf", w.resolvConf)
	must(t, client.WaitFor("dns rules set", 10*time.Second))
	stub := stubOf(t, w.resolvConf)

	if dev := routeDev(w.laptop, "10.1.2.3"); dev == "sy1" {
		t.Fatalf("include: 10.1.2.3 is routed into the tunnel before its name was resolved")
	}
	err := eventually(10*time.Second, func() error { // the first, while the tunnel comes up, may time out
		got, rcode, err := digA(w.laptop, stub, "app.corp.example")
		if err == nil && got != "10.1.2.3" {
			err = fmt.Errorf("answer %q (rcode %d)", got, rcode)
		}
		return err
	})
	if err != nil {
		t.Fatalf("include: app.corp.example: %v", err)
	}
	// The route was in place when the answer came: no waiting here.
	if dev := routeDev(w.laptop, "10.1.2.3"); dev != "sy1" {
		t.Fatalf("include: after resolving app.corp.example, 10.1.2.3 goes out of %q, want sy1", dev)
	}
	wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", laptopIP)
	if dev := routeDev(w.laptop, "10.1.2.4"); dev == "sy1" {
		t.Fatalf("include: a neighbour of the learned address is routed into the tunnel")
	}
	if got, _, err := digA(w.laptop, stub, "www.outside.example"); err != nil || got != "198.51.100.80" {
		t.Fatalf("include: www.outside.example: %q, %v", got, err)
	}
	if dev := routeDev(w.laptop, "198.51.100.80"); dev == "sy1" {
		t.Fatalf("include: www.outside.example's address is routed into the tunnel")
	}
	wantPeer(t, w.laptop, "tcp", "198.51.100.80:7000", underlay)

	// Exclude: everything through the tunnel (10/8 too) but outside.example's names.
	w.cli("split-tunnel", "mode", "exclude")
	w.cli("split-tunnel", "remove", "10.0.0.0/8")
	w.cli("split-tunnel", "add", "--domain", "outside.example")
	err = eventually(10*time.Second, func() error {
		if dev := routeDev(w.laptop, "198.51.100.80"); dev != "sy1" {
			return fmt.Errorf("198.51.100.80 goes out of %q", dev)
		}
		if dev := routeDev(w.laptop, "10.1.2.3"); dev != "sy1" {
			return fmt.Errorf("10.1.2.3 goes out of %q", dev)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("exclude: before resolving, everything should go into the tunnel: %v", err)
	}
	if got, _, err := digA(w.laptop, stub, "www.outside.example"); err != nil || got != "198.51.100.80" {
		t.Fatalf("exclude: www.outside.example: %q, %v", got, err)
	}
	if dev := routeDev(w.laptop, "198.51.100.80"); dev == "sy1" {
		t.Fatalf("exclude: after resolving www.outside.example, its address still goes into the tunnel")
	}
	wantPeer(t, w.laptop, "tcp", "198.51.100.80:7000", underlay)
	if dev := routeDev(w.laptop, "198.51.100.81"); dev != "sy1" {
		t.Fatalf("exclude: a neighbour of the excluded address goes out of %q, want sy1", dev)
	}
	if got, _, err := digA(w.laptop, stub, "app.corp.example"); err != nil || got != "10.1.2.3" {
		t.Fatalf("exclude: app.corp.example: %q, %v", got, err)
	}
	wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", laptopIP)

	must(t, client.Stop())
	if dev := routeDev(w.laptop, "198.51.100.80"); dev == "sy1" {
		t.Fatal("a route through sy1 is left after the client stopped")
	}
	if out, _ := w.laptop.Exec("ip", "route", "show", "table", "all"); strings.Contains(out, "198.51.100.80") {
		t.Fatalf("a learned route is left after the client stopped:\n%s", out)
	}
}
