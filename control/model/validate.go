package model

import (
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits on free-text fields.
const (
	MaxNameLen    = 64
	MaxCommentLen = 1024
)

// ValidateName checks the name of a virtual network or tunnel: 1 to 64 letters,
// digits, '.', '_' or '-', starting with a letter or digit, and not a UUID (so
// that "name or id" is never ambiguous).
func ValidateName(what, name string) error {
	if name == "" {
		return Errorf(KindInvalid, "%s name must not be empty", what)
	}
	if len(name) > MaxNameLen {
		return Errorf(KindInvalid, "%s name is %d bytes long; the limit is %d", what, len(name), MaxNameLen)
	}
	for i, r := range name {
		ok := r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || (i > 0 && strings.ContainsRune("._-", r)))
		if !ok {
			return Errorf(KindInvalid, "%s name %q is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit", what, name)
		}
	}
	if _, err := uuid.Parse(name); err == nil {
		return Errorf(KindInvalid, "%s name %q looks like an id; choose another name", what, name)
	}
	return nil
}

// ValidateComment checks a free-text comment: valid UTF-8, printable, at most 1024 bytes.
func ValidateComment(c string) error {
	if len(c) > MaxCommentLen {
		return Errorf(KindInvalid, "comment is %d bytes long; the limit is %d", len(c), MaxCommentLen)
	}
	if !utf8.ValidString(c) {
		return Errorf(KindInvalid, "comment is not valid UTF-8")
	}
	for _, r := range c {
		if unicode.IsControl(r) {
			return Errorf(KindInvalid, "comment contains a control character")
		}
	}
	return nil
}

// ValidateText checks free text that an agent or device reports about itself
// (hostname, OS, version): at most max bytes of valid UTF-8 without control
// characters (C0, DEL, C1: ANSI escapes, CR, LF, tab) or bidirectional
// overrides, any of which could forge rows in a table or lines in a log.
func ValidateText(what, s string, max int) error {
	if len(s) > max {
		return Errorf(KindInvalid, "%s is %d bytes long; the limit is %d", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return Errorf(KindInvalid, "%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return Errorf(KindInvalid, "%s %q contains a control character", what, s)
		}
	}
	return nil
}

// MaxUserLen bounds a user's email address.
const MaxUserLen = 254

// ValidateUser checks a user's email address as an admin gives it to an
// enrollment token: local@domain, printable, no spaces, at most 254 bytes.
func ValidateUser(u string) error {
	if len(u) > MaxUserLen {
		return Errorf(KindInvalid, "user %q is %d bytes long; the limit is %d", u, len(u), MaxUserLen)
	}
	local, domain, ok := strings.Cut(u, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || !utf8.ValidString(u) ||
		strings.ContainsFunc(u, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return Errorf(KindInvalid, "user %q is not an email address (e.g. alice@example.com)", u)
	}
	return nil
}

// ParsePrefix parses a CIDR and requires it in canonical form: 10.1.2.3/16 is
// refused with a message naming 10.1.0.0/16.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, Errorf(KindInvalid, "%q is not a valid CIDR (e.g. 192.0.2.0/24 or 2001:db8::/32)", s)
	}
	return p, ValidatePrefix(p)
}

// ValidatePrefix requires a valid, canonical prefix with no IPv4-mapped IPv6 address.
func ValidatePrefix(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return Errorf(KindInvalid, "network is missing or not a valid CIDR")
	case p.Addr().Is4In6():
		return Errorf(KindInvalid, "%s is an IPv4-mapped IPv6 network; write it as IPv4", p)
	case p != p.Masked():
		return Errorf(KindInvalid, "%s is not a network address: its host bits are set; did you mean %s?", p, p.Masked())
	}
	return nil
}

// ParseAddr parses an IP address for a route lookup.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, Errorf(KindInvalid, "%q is not a valid IP address", s)
	}
	return a.Unmap(), nil
}
