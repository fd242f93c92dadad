package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Config is the DNS part of a device's configuration, as the edge sends it
// (control/model's DeviceDNS).
type Config struct {
	// Resolvers are the private resolvers of the device's virtual network.
	Resolvers []Rule
	// Zone is the overlay names' zone (e.g. "sy.internal"); empty means none.
	Zone string
	// Server is the edge's overlay address, which answers Zone on port 53.
	Server netip.Addr
	// Watched are domains (and their subdomains) the host must ask the
	// stub for although no rule sends them through the tunnel: the stub
	// forwards them to the host's resolvers and StubConfig.OnAnswer sees
	// their answers (the domain split tunnel's names). Only resolved's
	// routing domains need them; with resolv.conf the stub sees every name.
	Watched []string
}

// Rule sends the queries for Domain and its subdomains to Servers.
type Rule struct {
	// Domain is lower case, without a trailing dot ("corp.example").
	Domain string
	// Servers are tried in order.
	Servers []netip.AddrPort
}

// zonePort is the port the edge answers its overlay names on.
const zonePort = 53

// rules returns every rule of c, the zone's last (so that it wins over a
// resolver rule for the same domain), checking each.
func (c Config) rules() ([]Rule, error) {
	rules := slices.Clone(c.Resolvers)
	if c.Zone != "" {
		if !c.Server.IsValid() {
			return nil, fmt.Errorf("dns zone %q: no server address", c.Zone)
		}
		rules = append(rules, Rule{Domain: c.Zone, Servers: []netip.AddrPort{netip.AddrPortFrom(c.Server, zonePort)}})
	}
	var errs []error
	for _, r := range rules {
		if err := r.check(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range c.Watched {
		if err := CheckDomain(d); err != nil {
			errs = append(errs, err)
		}
	}
	return rules, errors.Join(errs...)
}

// Validate reports the first problems of c: a malformed domain, a rule
// without servers, a server without an address or port.
func (c Config) Validate() error {
	_, err := c.rules()
	return err
}

// Domains lists the domains the host must ask the stub for: every rule's,
// the zone and the watched ones.
func (c Config) Domains() []string {
	rules, _ := c.rules()
	var out []string
	for _, r := range rules {
		if !slices.Contains(out, r.Domain) {
			out = append(out, r.Domain)
		}
	}
	for _, d := range c.Watched {
		if CheckDomain(d) == nil && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// TunnelRoutes lists the host routes (a /32 or /128 each) that the caller
// must route into the tunnel so that the stub reaches every server of c
// there.
func (c Config) TunnelRoutes() []netip.Prefix {
	rules, _ := c.rules()
	var out []netip.Prefix
	for _, r := range rules {
		for _, s := range r.Servers {
			a := s.Addr().Unmap()
			if !a.IsValid() {
				continue
			}
			p := netip.PrefixFrom(a.WithZone(""), a.BitLen())
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func (r Rule) check() error {
	if err := CheckDomain(r.Domain); err != nil {
		return err
	}
	if len(r.Servers) == 0 {
		return fmt.Errorf("dns rule %s: no servers", r.Domain)
	}
	for _, s := range r.Servers {
		if !s.Addr().IsValid() || s.Port() == 0 {
			return fmt.Errorf("dns rule %s: server %q is not an address and port", r.Domain, s)
		}
	}
	return nil
}

// CheckDomain reports whether d is a domain as rules name them: lower
// case, no trailing dot, at most 253 characters, labels of 1 to 63 letters,
// digits, hyphens (not first or last) and underscores.
func CheckDomain(d string) error {
	if d == "" {
		return errors.New("dns domain: empty")
	}
	if len(d) > 253 {
		return fmt.Errorf("dns domain %q: longer than 253 characters", d)
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("dns domain %q: a label is empty or longer than 63 characters", d)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("dns domain %q: label %q starts or ends with a hyphen", d, label)
		}
		for _, ch := range label {
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return fmt.Errorf("dns domain %q: %q is not a lower-case letter, digit, hyphen or underscore", d, ch)
			}
		}
	}
	return nil
}
