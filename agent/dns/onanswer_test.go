package dns

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestOnAnswerBeforeTheApplication: the hook sees the question's name
// (canonical) and the answer's addresses with their TTL, for tunnel and
// host names and for Lookup, and the answer reaches the client only after
// the hook returned.
func TestOnAnswerBeforeTheApplication(t *testing.T) {
	site := serve(t, "127.0.0.1", answerA("192.0.2.10"))
	upstream := serve(t, "127.0.0.1", answerA("198.51.100.1"))
	var mu sync.Mutex
	seen := map[string][]Answer{}
	release := make(chan struct{})
	var tunnel, host countingDialer
	s, err := NewStub(StubConfig{
		Listen: netip.MustParseAddrPort("127.0.0.1:0"),
		Tunnel: tunnel.dial, Host: host.dial, HostServers: []netip.AddrPort{upstream.addr},
		HostLookup: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("198.51.100.2")}, nil
		},
		OnAnswer: func(name string, addrs []Answer) {
			if name == "slow.example.org" {
				<-release
			}
			mu.Lock()
			seen[name] = addrs
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{site.addr}}}}); err != nil {
		t.Fatal(err)
	}
	ask(t, s, "udp", "App.Corp.Example.", dns.TypeA)
	ask(t, s, "tcp", "www.example.org", dns.TypeA)
	if _, err := s.Lookup(context.Background(), "db.corp.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(context.Background(), "host.example.net"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for name, want := range map[string]string{
		"app.corp.example": "192.0.2.10", "www.example.org": "198.51.100.1",
		"db.corp.example": "192.0.2.10", "host.example.net": "198.51.100.2",
	} {
		if got := seen[name]; len(got) != 1 || got[0].Addr != netip.MustParseAddr(want) {
			t.Errorf("OnAnswer for %s: %+v, want %s", name, got, want)
		}
	}
	if got := seen["app.corp.example"]; len(got) == 1 && got[0].TTL != 60*time.Second {
		t.Errorf("TTL %v, want the record's 60s", got[0].TTL)
	}
	mu.Unlock()

	got := make(chan *dns.Msg, 1)
	go func() {
		r, _, _ := (&dns.Client{}).Exchange(new(dns.Msg).SetQuestion("slow.example.org.", dns.TypeA), s.Addr().String())
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("the answer reached the client before OnAnswer returned")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if r := <-got; firstA(r) != "198.51.100.1" {
		t.Fatalf("answer after OnAnswer: %v", r)
	}
}
