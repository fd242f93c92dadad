package model

import "strings"

// ParseSplitDomain checks a split tunnel domain and returns it canonical:
// a domain (ParseDomain), meaning that name and its subdomains, or
// "*." and a domain, meaning its subdomains only.
func ParseSplitDomain(s string) (string, error) {
	t := strings.TrimSpace(s)
	wild := strings.HasPrefix(t, "*.")
	d, err := ParseDomain(strings.TrimPrefix(t, "*."))
	if err != nil {
		return "", Errorf(KindInvalid, "split tunnel domain %q: %v (give corp.example for it and its subdomains, *.corp.example for its subdomains only)", s, err)
	}
	if wild {
		return "*." + d, nil
	}
	return d, nil
}

// SplitDomainMatches reports whether name (a DNS name in any case, with or
// without the trailing dot) is covered by the canonical split tunnel
// domain d: "corp.example" covers corp.example and a.b.corp.example,
// "*.corp.example" a.corp.example but not corp.example itself; neither
// covers notcorp.example.
func SplitDomainMatches(d, name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if base, ok := strings.CutPrefix(d, "*."); ok {
		return strings.HasSuffix(name, "."+base)
	}
	return name == d || strings.HasSuffix(name, "."+d)
}
