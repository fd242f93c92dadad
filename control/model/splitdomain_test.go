package model

import (
	"errors"
	"testing"
)

func TestParseSplitDomain(t *testing.T) {
	for in, want := range map[string]string{
		"corp.example": "corp.example", "Corp.Example.": "corp.example",
		"*.corp.example": "*.corp.example", " *.APP.corp.example ": "*.app.corp.example",
	} {
		if got, err := ParseSplitDomain(in); err != nil || got != want {
			t.Errorf("ParseSplitDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "*", "*.", "a.*.example", "**.example", "*example.com", "192.0.2.1", "-a.example", "a..example", "corp_x.example"} {
		if got, err := ParseSplitDomain(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSplitDomain(%q) = %q, %v; want an invalid-input error", bad, got, err)
		}
	}
}

func TestSplitDomainMatches(t *testing.T) {
	for _, tc := range []struct {
		d, name string
		want    bool
	}{
		{"corp.example", "corp.example", true},
		{"corp.example", "App.Corp.Example.", true},
		{"corp.example", "a.b.corp.example", true},
		{"corp.example", "notcorp.example", false},
		{"corp.example", "example", false},
		{"*.corp.example", "corp.example", false},
		{"*.corp.example", "corp.example.", false},
		{"*.corp.example", "app.corp.example", true},
		{"*.corp.example", "a.b.corp.example.", true},
		{"*.corp.example", "xcorp.example", false},
	} {
		if got := SplitDomainMatches(tc.d, tc.name); got != tc.want {
			t.Errorf("SplitDomainMatches(%q, %q) = %v, want %v", tc.d, tc.name, got, tc.want)
		}
	}
}
