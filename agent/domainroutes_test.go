package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/agent/dns"
	"github.com/switchyard/switchyard/control/model"
)

func answers(ttl time.Duration, addrs ...string) []dns.Answer {
	var out []dns.Answer
	for _, a := range addrs {
		out = append(out, dns.Answer{Addr: netip.MustParseAddr(a), TTL: ttl})
	}
	return out
}

// fakeClock is a settable time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestDomainRoutesLearn: only names a domain entry covers are learned
// (corp.example covers itself and its subdomains, *.corp.example only the
// subdomains), each address held for max(TTL, floor); changed runs for a
// new address, not for a known one; expiry removes it.
func TestDomainRoutesLearn(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	var changes atomic.Int64
	d := newDomainRoutes(func() { changes.Add(1) })
	d.now = clock.now
	d.setDomains([]string{"*.corp.example", "example.com"})
	d.learn("corp.example", answers(time.Hour, "192.0.2.1"))    // *.corp.example: not the apex
	d.learn("notexample.com", answers(time.Hour, "192.0.2.2"))  // not a label boundary
	d.learn("www.example.org", answers(time.Hour, "192.0.2.3")) // no entry
	d.learn("app.corp.example", answers(5*time.Second, "192.0.2.10", "2001:db8::10"))
	d.learn("example.com", answers(300*time.Second, "198.51.100.7"))
	got, _ := d.snapshot()
	if fmt.Sprint(got) != "[192.0.2.10/32 198.51.100.7/32 2001:db8::10/128]" {
		t.Fatalf("learned %v", got)
	}
	if changes.Load() != 2 {
		t.Fatalf("changed ran %d times, want 2 (one per answer with new addresses)", changes.Load())
	}
	_, gen := d.snapshot()
	d.applied(gen)
	d.learn("app.corp.example", answers(5*time.Second, "192.0.2.10")) // known, applied: nothing to do
	if changes.Load() != 2 {
		t.Fatalf("a known address ran changed again")
	}
	clock.add(59 * time.Second)
	if d.expire() {
		t.Fatal("an address went before the 60 s floor")
	}
	clock.add(time.Second)
	if !d.expire() {
		t.Fatal("nothing expired at the floor")
	}
	if got, _ := d.snapshot(); fmt.Sprint(got) != "[198.51.100.7/32]" {
		t.Fatalf("after the floor: %v", got)
	}
	clock.add(240 * time.Second)
	d.expire()
	if d.len() != 0 || d.nexpired.Load() != 3 {
		t.Fatalf("after the TTL: %d left, %d expired", d.len(), d.nexpired.Load())
	}
	// A removed entry drops what it learned.
	d.learn("example.com", answers(time.Hour, "198.51.100.8"))
	if !d.setDomains([]string{"*.corp.example"}) || d.len() != 0 {
		t.Fatalf("after removing example.com: %d learned", d.len())
	}
}

// TestDomainRoutesPendingWaits: an address another answer brought, whose
// routes are not in place yet, makes the second answer wait for them too.
func TestDomainRoutesPendingWaits(t *testing.T) {
	var changes atomic.Int64
	d := newDomainRoutes(func() { changes.Add(1) })
	d.setDomains([]string{"corp.example"})
	d.learn("a.corp.example", answers(0, "192.0.2.10"))
	d.learn("b.corp.example", answers(0, "192.0.2.10")) // not applied yet
	if changes.Load() != 2 {
		t.Fatalf("changed ran %d times, want 2", changes.Load())
	}
}

// TestDomainRoutesBound: at most max addresses; the one that expires first
// goes, counted.
func TestDomainRoutesBound(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	d := newDomainRoutes(func() {})
	d.now, d.max = clock.now, 3
	d.setDomains([]string{"corp.example"})
	d.learn("a.corp.example", answers(time.Hour, "192.0.2.1"))
	d.learn("b.corp.example", answers(10*time.Minute, "192.0.2.2")) // expires first
	d.learn("c.corp.example", answers(time.Hour, "192.0.2.3"))
	d.learn("d.corp.example", answers(time.Hour, "192.0.2.4"))
	if got, _ := d.snapshot(); fmt.Sprint(got) != "[192.0.2.1/32 192.0.2.3/32 192.0.2.4/32]" || d.nevicted.Load() != 1 {
		t.Fatalf("learned %v, %d evicted", got, d.nevicted.Load())
	}
}

// TestDomainRoutesRun: the sweep removes expired addresses and calls
// changed, and ends with its context.
func TestDomainRoutesRun(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	changed := make(chan struct{}, 10)
	d := newDomainRoutes(func() { changed <- struct{}{} })
	d.now = clock.now
	d.setDomains([]string{"corp.example"})
	d.learn("a.corp.example", answers(0, "192.0.2.1"))
	<-changed
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.run(ctx, time.Millisecond); close(done) }()
	clock.add(time.Minute)
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the sweep did not remove the expired address")
	}
	cancel()
	<-done
	if d.len() != 0 {
		t.Fatalf("%d left", d.len())
	}
}

// TestClientRoutesDomains: learned addresses go into the tunnel in
// Include mode and around it in Exclude mode; the DNS servers go in in
// both; a domain entry itself routes nothing.
func TestClientRoutesDomains(t *testing.T) {
	learned := []netip.Prefix{mpp("198.51.100.7/32")}
	dnsServers := []netip.Prefix{mpp("10.1.0.53/32")}
	in := func(routes []netip.Prefix, a string) bool {
		for _, p := range routes {
			if p.Contains(netip.MustParseAddr(a)) {
				return true
			}
		}
		return false
	}
	for _, mode := range []string{model.SplitInclude, model.SplitExclude} {
		c := model.DeviceConfig{
			OverlayRange: mpp("100.96.0.0/12"), Edge: model.EdgePeer{Endpoint: "203.0.113.2:51820"},
			SplitTunnel: model.SplitTunnel{Mode: mode, Entries: []model.SplitEntry{{Domain: "*.corp.example"}, {Address: mpp("10.0.0.0/8")}}},
		}
		routes, err := clientRoutes(c, "", dnsServers, learned)
		if err != nil {
			t.Fatal(err)
		}
		include := mode == model.SplitInclude
		if in(routes, "198.51.100.7") != include || in(routes, "198.51.100.8") == include {
			t.Errorf("%s: the learned address routed in = %v, its neighbour = %v", mode, in(routes, "198.51.100.7"), in(routes, "198.51.100.8"))
		}
		if !in(routes, "10.1.0.53") {
			t.Errorf("%s: the DNS server is not routed into the tunnel", mode)
		}
		if in(routes, "203.0.113.2") {
			t.Errorf("%s: the edge is routed into the tunnel", mode)
		}
	}
}

// TestToDNS: the device's DNS rules and zone, and the split tunnel's
// domains watched (without their *.).
func TestToDNS(t *testing.T) {
	c := model.DeviceConfig{
		DNS: model.DeviceDNS{
			Resolvers: []model.DNSRule{{Domain: "corp.example", Servers: []netip.AddrPort{netip.MustParseAddrPort("10.1.0.53:53")}}},
			Zone:      "sy.internal", Server: netip.MustParseAddr("100.96.0.1"),
		},
		SplitTunnel: model.SplitTunnel{Entries: []model.SplitEntry{{Domain: "*.apps.example"}, {Domain: "example.com"}, {Address: mpp("10.0.0.0/8")}}},
	}
	d := toDNS(c)
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(d.Domains()); got != "[corp.example sy.internal apps.example example.com]" {
		t.Errorf("domains %s", got)
	}
	if got := fmt.Sprint(d.TunnelRoutes()); got != "[10.1.0.53/32 100.96.0.1/32]" {
		t.Errorf("tunnel routes %s", got)
	}
}
