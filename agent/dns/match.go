package dns

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// table is one set of rules, immutable once built; the stub swaps tables
// whole.
type table struct {
	rules map[string][]netip.AddrPort // domain (lower case, no trailing dot) → servers
}

// newTable builds the table of c, or fails on c's first bad rule.
func newTable(c Config) (*table, error) {
	rules, err := c.rules()
	if err != nil {
		return nil, err
	}
	t := &table{rules: make(map[string][]netip.AddrPort, len(rules))}
	for _, r := range rules { // a later rule for the same domain (the zone) wins
		t.rules[r.Domain] = r.Servers
	}
	return t, nil
}

// match returns the rule whose domain is the longest suffix of name, on
// label boundaries: a domain matches itself and its subdomains, so
// "corp.example" matches "a.corp.example." but not "notcorp.example.".
// name is a DNS name in presentation format, in any case, with or without
// the trailing dot.
func (t *table) match(name string) (domain string, servers []netip.AddrPort, ok bool) {
	if t == nil || len(t.rules) == 0 {
		return "", nil, false
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, i := range dns.Split(name) { // label starts, longest suffix first
		if s, ok := t.rules[name[i:]]; ok {
			return name[i:], s, true
		}
	}
	return "", nil, false
}
