package web

import (
	"errors"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestParseSplitEntry: the form's one field takes a CIDR, an IP or a
// domain, and refuses what is none of them.
func TestParseSplitEntry(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.0/24": "192.0.2.0/24", "192.0.2.7": "192.0.2.7/32", "2001:db8::1": "2001:db8::1/128",
		"*.Corp.Example": "*.corp.example", "example.com": "example.com",
	} {
		e, err := parseSplitEntry(in)
		if err != nil || e.Key() != want || (e.Domain != "") == e.Address.IsValid() {
			t.Errorf("parseSplitEntry(%q) = %+v, %v; want %s", in, e, err, want)
		}
	}
	for _, bad := range []string{"192.0.2.0/33", "300.1.2.3", "a.*.example", "bad_name.example"} {
		if _, err := parseSplitEntry(bad); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("parseSplitEntry(%q): %v, want invalid", bad, err)
		}
	}
}
