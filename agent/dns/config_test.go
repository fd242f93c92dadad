package dns

import (
	"net/netip"
	"slices"
	"testing"
)

var (
	ns1 = netip.MustParseAddrPort("192.0.2.53:53")
	ns2 = netip.MustParseAddrPort("[2001:db8::53]:5353")
	ns3 = netip.MustParseAddrPort("198.51.100.53:53")
)

func TestMatch(t *testing.T) {
	tab, err := newTable(Config{Resolvers: []Rule{
		{Domain: "corp.example", Servers: []netip.AddrPort{ns1}},
		{Domain: "eu.corp.example", Servers: []netip.AddrPort{ns2}},
		{Domain: "example", Servers: []netip.AddrPort{ns3}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, domain string
	}{
		{"corp.example.", "corp.example"},
		{"corp.example", "corp.example"},
		{"app.corp.example.", "corp.example"},
		{"a.b.c.corp.example.", "corp.example"},
		{"APP.CORP.EXAMPLE.", "corp.example"},
		{"eu.corp.example.", "eu.corp.example"},
		{"db.eu.corp.example.", "eu.corp.example"},
		{"neu.corp.example.", "corp.example"},
		{"notcorp.example.", "example"},
		{"example.", "example"},
		{"example.org.", ""},
		{"corp.example.org.", ""},
		{"org.", ""},
		{".", ""},
		{"", ""},
	} {
		domain, _, ok := tab.match(tc.name)
		if domain != tc.domain || ok != (tc.domain != "") {
			t.Errorf("match(%q) = %q, %v; want %q", tc.name, domain, ok, tc.domain)
		}
	}
	var empty *table
	if _, _, ok := empty.match("corp.example."); ok {
		t.Error("a stub without rules matched")
	}
}

func TestCheckDomain(t *testing.T) {
	long := "a" + string(slices.Repeat([]byte("x"), 63))
	for _, tc := range []struct {
		domain string
		ok     bool
	}{
		{"corp.example", true},
		{"a-b.c_d.example", true},
		{"example", true},
		{"xn--bcher-kva.example", true},
		{"", false},
		{"corp.example.", false},
		{".corp.example", false},
		{"corp..example", false},
		{"Corp.example", false},
		{"*.corp.example", false},
		{"-corp.example", false},
		{"corp-.example", false},
		{"corp example", false},
		{long + ".example", false},
		{string(slices.Repeat([]byte("abc."), 64)) + "x", false},
	} {
		if err := CheckDomain(tc.domain); (err == nil) != tc.ok {
			t.Errorf("CheckDomain(%q) = %v, want ok %v", tc.domain, err, tc.ok)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		ok   bool
	}{
		{"empty", Config{}, true},
		{"rule", Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{ns1}}}}, true},
		{"zone", Config{Zone: "sy.internal", Server: netip.MustParseAddr("100.96.0.1")}, true},
		{"zone without server", Config{Zone: "sy.internal"}, false},
		{"no servers", Config{Resolvers: []Rule{{Domain: "corp.example"}}}, false},
		{"port 0", Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:0")}}}}, false},
		{"no address", Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{{}}}}}, false},
		{"bad domain", Config{Resolvers: []Rule{{Domain: "corp.example.", Servers: []netip.AddrPort{ns1}}}}, false},
	} {
		if err := tc.c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestTunnelRoutes(t *testing.T) {
	c := Config{
		Resolvers: []Rule{
			{Domain: "corp.example", Servers: []netip.AddrPort{ns1, ns2}},
			{Domain: "lab.example", Servers: []netip.AddrPort{ns1, netip.MustParseAddrPort("[::ffff:198.51.100.7]:53")}},
		},
		Zone: "sy.internal", Server: netip.MustParseAddr("100.96.0.1"),
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.53/32"),
		netip.MustParsePrefix("2001:db8::53/128"),
		netip.MustParsePrefix("198.51.100.7/32"),
		netip.MustParsePrefix("100.96.0.1/32"),
	}
	if got := c.TunnelRoutes(); !slices.Equal(got, want) {
		t.Errorf("TunnelRoutes() = %v, want %v", got, want)
	}
	if got, want := c.Domains(), []string{"corp.example", "lab.example", "sy.internal"}; !slices.Equal(got, want) {
		t.Errorf("Domains() = %v, want %v", got, want)
	}
}
