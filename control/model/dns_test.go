package model

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseDomain(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{"plain", "corp.example", "corp.example", ""},
		{"upper case and trailing dot", "Corp.Example.", "corp.example", ""},
		{"one label", "internal", "internal", ""},
		{"punycode", "xn--bcher-kva.example", "xn--bcher-kva.example", ""},
		{"digits and hyphens", "a-1.2b.example", "a-1.2b.example", ""},
		{"63-byte label", long63 + ".example", long63 + ".example", ""},
		{"253 bytes", strings.Repeat(long63+".", 3) + strings.Repeat("b", 61), strings.Repeat(long63+".", 3) + strings.Repeat("b", 61), ""},
		{"empty", "", "", `domain "" is empty`},
		{"root", ".", "", `domain "." is empty`},
		{"wildcard", "*.corp.example", "", `domain "*.corp.example" has a wildcard`},
		{"IPv4", "192.0.2.1", "", `domain "192.0.2.1" is an IP address`},
		{"IPv6", "2001:db8::1", "", `domain "2001:db8::1" is an IP address`},
		{"numeric last label", "10.1.2", "", `its last label "2" is all digits`},
		{"empty label", "corp..example", "", "empty label"},
		{"leading dot", ".corp.example", "", "empty label"},
		{"leading hyphen", "-corp.example", "", `label "-corp" starts or ends with a hyphen`},
		{"trailing hyphen", "corp-.example", "", `label "corp-" starts or ends with a hyphen`},
		{"underscore", "_sip.example", "", `label "_sip" has '_'`},
		{"space", "corp example", "", `has ' '`},
		{"unicode", "bücher.example", "", "use letters, digits and hyphens"},
		{"64-byte label", long63 + "a.example", "", "is 64 bytes long; the limit is 63"},
		{"254 bytes", strings.Repeat(long63+".", 3) + strings.Repeat("b", 62), "", "is 254 bytes long; the limit is 253"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDomain(tc.in)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParseDomain(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParseDomain(%q) = %q, %v; want an invalid error with %q", tc.in, got, err, tc.err)
			}
		})
	}
}

func TestParseDNSServers(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want string
		err  string
	}{
		{"IPv4 gets 53", []string{"192.0.2.53"}, "[192.0.2.53:53]", ""},
		{"IPv4 with port", []string{"192.0.2.53:5353"}, "[192.0.2.53:5353]", ""},
		{"IPv6 gets 53", []string{"2001:db8::53"}, "[[2001:db8::53]:53]", ""},
		{"IPv6 with port", []string{"[2001:db8::53]:5353"}, "[[2001:db8::53]:5353]", ""},
		{"mapped IPv4 unmapped", []string{"::ffff:192.0.2.1"}, "[192.0.2.1:53]", ""},
		{"two", []string{"192.0.2.53", "198.51.100.53"}, "[192.0.2.53:53 198.51.100.53:53]", ""},
		{"none", nil, "", "needs at least one server"},
		{"a name", []string{"ns1.corp.example"}, "", `DNS server "ns1.corp.example" is not an IP address or IP:PORT`},
		{"bad port", []string{"192.0.2.53:99999"}, "", `DNS server "192.0.2.53:99999" is not an IP address`},
		{"port 0", []string{"192.0.2.53:0"}, "", "DNS server 192.0.2.53:0 has port 0"},
		{"unspecified", []string{"0.0.0.0"}, "", "DNS server 0.0.0.0:53 is not a unicast address"},
		{"multicast", []string{"ff02::fb"}, "", "is not a unicast address"},
		{"zone", []string{"fe80::1%eth0"}, "", "has an IPv6 zone"},
		{"duplicate", []string{"192.0.2.53", "192.0.2.53:53"}, "", "DNS server 192.0.2.53:53 is given twice"},
		{"too many", strings.Fields("192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6 192.0.2.7 192.0.2.8 192.0.2.9"), "", "has 9 servers; the limit is 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDNSServers(tc.in)
			if tc.err == "" {
				if err != nil || fmtAddrPorts(got) != tc.want {
					t.Fatalf("ParseDNSServers(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParseDNSServers(%q) = %v, %v; want an invalid error with %q", tc.in, got, err, tc.err)
			}
		})
	}
}

func fmtAddrPorts(aps []netip.AddrPort) string {
	var s []string
	for _, ap := range aps {
		s = append(s, ap.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestParseZone(t *testing.T) {
	if z, err := ParseZone("SY.Internal."); err != nil || z != "sy.internal" {
		t.Fatalf("ParseZone = %q, %v", z, err)
	}
	if _, err := ParseZone("*.sy.internal"); err == nil || !strings.HasPrefix(err.Error(), "DNS zone: domain") {
		t.Fatalf("ParseZone(wildcard) = %v, want a DNS zone error", err)
	}
}

func TestDNSLabel(t *testing.T) {
	for in, want := range map[string]string{
		"laptop-7":              "laptop-7",
		"Alice's MacBook Pro":   "alice-s-macbook-pro",
		"host_1.corp":           "host-1-corp",
		"--x--":                 "x",
		"___":                   "",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := DNSLabel(in); got != want {
			t.Errorf("DNSLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
