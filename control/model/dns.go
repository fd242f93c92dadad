package model

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// DNSResolver sends the queries for Domain and its subdomains, from clients in VNetID, to Servers.
type DNSResolver struct {
	ID      uuid.UUID        `json:"id"`
	VNetID  uuid.UUID        `json:"vnet_id"`
	Domain  string           `json:"domain"`  // canonical: lower case, no trailing dot
	Servers []netip.AddrPort `json:"servers"` // port 53 unless given
	// VNetName is the vnet's name in answers (never stored).
	VNetName string `json:"vnet_name,omitempty"`
}

// DeviceDNS is the DNS part of a client's configuration.
type DeviceDNS struct {
	Resolvers []DNSRule  `json:"resolvers,omitempty"` // the rules of the device's vnet
	Zone      string     `json:"zone,omitempty"`      // the overlay names' zone, e.g. "sy.internal"
	Server    netip.Addr `json:"server,omitzero"`     // the edge overlay address that answers Zone
}

// DNSRule is one resolver rule as a client applies it.
type DNSRule struct {
	Domain  string           `json:"domain"`
	Servers []netip.AddrPort `json:"servers"`
}

// NewDNSResolver is the request to add a resolver rule. VNet names the vnet
// by name or id; empty means the default one. Servers are IP or IP:PORT
// (IPv6 with a port in brackets).
type NewDNSResolver struct {
	VNet    string   `json:"vnet,omitempty"`
	Domain  string   `json:"domain"`
	Servers []string `json:"servers"`
}

// DNSZone is the overlay names' zone setting.
type DNSZone struct {
	Zone string `json:"zone"`
}

// DefaultDNSZone is the zone the edge answers devices' names in until an
// operator sets another.
const DefaultDNSZone = "sy.internal"

// MaxDNSServers bounds the servers of one resolver rule.
const MaxDNSServers = 8

// DNSPort is the port a server gets when none is given.
const DNSPort = 53

// ParseDomain checks a domain name and returns it canonical (lower case, no
// trailing dot): labels of 1 to 63 letters, digits and hyphens, none
// starting or ending with a hyphen, at most 253 bytes in all, at least one
// label, and not an IP address. Punycode labels (xn--...) pass; wildcards,
// underscores and other characters do not.
func ParseDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(s, "."))
	switch {
	case d == "":
		return "", Errorf(KindInvalid, "domain %q is empty: give a name such as corp.example", s)
	case len(d) > 253:
		return "", Errorf(KindInvalid, "domain %q is %d bytes long; the limit is 253", s, len(d))
	case strings.Contains(d, "*"):
		return "", Errorf(KindInvalid, "domain %q has a wildcard: a rule covers its subdomains already, give corp.example for *.corp.example", s)
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return "", Errorf(KindInvalid, "domain %q is an IP address, not a domain name", s)
	}
	labels := strings.Split(d, ".")
	for _, l := range labels {
		if err := checkLabel(l); err != "" {
			return "", Errorf(KindInvalid, "domain %q is invalid: %s", s, err)
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", Errorf(KindInvalid, "domain %q is invalid: its last label %q is all digits", s, labels[len(labels)-1])
	}
	return d, nil
}

// checkLabel says what is wrong with one label of a domain, or "".
func checkLabel(l string) string {
	switch {
	case l == "":
		return "it has an empty label (two dots in a row, or a leading dot)"
	case len(l) > 63:
		return "label " + strconv.Quote(l[:16]+"...") + " is " + strconv.Itoa(len(l)) + " bytes long; the limit is 63"
	case l[0] == '-' || l[len(l)-1] == '-':
		return "label " + strconv.Quote(l) + " starts or ends with a hyphen"
	}
	for _, c := range []byte(l) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "label " + strconv.Quote(l) + " has " + strconv.QuoteRune(rune(c)) + ": use letters, digits and hyphens"
		}
	}
	return ""
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ParseDNSServer parses a resolver's server: an IP address (port 53) or
// IP:PORT, [IPv6]:PORT for IPv6 with a port. The port must not be 0.
func ParseDNSServer(s string) (netip.AddrPort, error) {
	t := strings.TrimSpace(s)
	if a, err := netip.ParseAddr(t); err == nil {
		if a.Zone() != "" {
			return netip.AddrPort{}, Errorf(KindInvalid, "DNS server %q has an IPv6 zone; give a global address", s)
		}
		ap := netip.AddrPortFrom(a.Unmap(), DNSPort)
		return ap, ValidateDNSServer(ap)
	}
	ap, err := netip.ParseAddrPort(t)
	if err != nil {
		return netip.AddrPort{}, Errorf(KindInvalid, "DNS server %q is not an IP address or IP:PORT (e.g. 192.0.2.53 or [2001:db8::53]:5353)", s)
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, Errorf(KindInvalid, "DNS server %q has an IPv6 zone; give a global address", s)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return ap, ValidateDNSServer(ap)
}

// ValidateDNSServer requires a usable unicast address and a port other than 0.
func ValidateDNSServer(ap netip.AddrPort) error {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		return Errorf(KindInvalid, "DNS server is missing or not a valid IP address")
	case ap.Port() == 0:
		return Errorf(KindInvalid, "DNS server %s has port 0", ap)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return Errorf(KindInvalid, "DNS server %s is not a unicast address", ap)
	}
	return nil
}

// ParseDNSServers parses a rule's servers: at least one, at most
// MaxDNSServers, no two the same.
func ParseDNSServers(ss []string) ([]netip.AddrPort, error) {
	if len(ss) == 0 {
		return nil, Errorf(KindInvalid, "a DNS resolver needs at least one server")
	}
	if len(ss) > MaxDNSServers {
		return nil, Errorf(KindInvalid, "a DNS resolver has %d servers; the limit is %d", len(ss), MaxDNSServers)
	}
	out := make([]netip.AddrPort, 0, len(ss))
	for _, s := range ss {
		ap, err := ParseDNSServer(s)
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			if o == ap {
				return nil, Errorf(KindInvalid, "DNS server %s is given twice", ap)
			}
		}
		out = append(out, ap)
	}
	return out, nil
}

// ParseZone checks the overlay names' zone: a domain as ParseDomain takes it.
func ParseZone(s string) (string, error) {
	z, err := ParseDomain(s)
	if err != nil {
		return "", Errorf(KindInvalid, "DNS zone: %s", err.(*Error).Message)
	}
	return z, nil
}

// DNSLabel turns a device or host name into the label of its overlay name:
// lower case, each character other than a letter, digit or hyphen becomes
// '-', at most 63 bytes, hyphens trimmed at both ends. It returns "" when
// nothing is left.
func DNSLabel(name string) string {
	b := make([]byte, 0, min(len(name), 63))
	for _, c := range []byte(strings.ToLower(name)) {
		if len(b) == 63 {
			break
		}
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			c = '-'
		}
		b = append(b, c)
	}
	return strings.Trim(string(b), "-")
}
