package token

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func sample() Tunnel {
	return Tunnel{
		TunnelID: uuid.MustParse("9f1c2a4e-3b5d-4c6e-8f70-112233445566"),
		Secret:   bytes.Repeat([]byte{7}, 32),
		API:      "https://192.0.2.1:7443",
		CAPin:    "sha256/abc=",
		Endpoint: "192.0.2.1:51820",
		EdgeKey:  "x",
	}
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	out, err := DecodeTunnel(in.Encode())
	in.Version = Version
	if err != nil || out.TunnelID != in.TunnelID || !bytes.Equal(out.Secret, in.Secret) || out.API != in.API || out.CAPin != in.CAPin || out.Endpoint != in.Endpoint {
		t.Fatalf("round trip: got %+v, %v; want %+v", out, err, in)
	}
}

// TestClusterAPIs: a token may name the other edges of a cluster; a token
// without them (every single-edge token) names its one API.
func TestClusterAPIs(t *testing.T) {
	in := sample()
	in.APIs = []string{"https://192.0.2.2:7443", "https://[2001:db8::3]:7443"}
	out, err := DecodeTunnel(in.Encode())
	if err != nil || strings.Join(out.APIList(), " ") != "https://192.0.2.1:7443 https://192.0.2.2:7443 https://[2001:db8::3]:7443" {
		t.Fatalf("a cluster token's APIs = %q, %v", out.APIList(), err)
	}
	if strings.Contains(sample().Encode(), "as") {
		t.Error("a single-edge token carries an empty API list")
	}
	if got := sample().APIList(); len(got) != 1 || got[0] != sample().API {
		t.Errorf("single-edge APIList = %q", got)
	}
	sec := Secret{Kind: KindDevice, ID: in.TunnelID, Secret: in.Secret, API: in.API, CAPin: in.CAPin, APIs: in.APIs[:1]}
	dec, err := DecodeSecret(sec.Encode(), KindDevice)
	if err != nil || len(dec.APIList()) != 2 {
		t.Fatalf("a cluster credential's APIs = %q, %v", dec.APIList(), err)
	}
}

func TestDecodeRejects(t *testing.T) {
	short := sample()
	short.Secret = []byte("x")
	http := sample()
	http.API = "http://192.0.2.1"
	otherHTTP := sample()
	otherHTTP.APIs = []string{"https://192.0.2.2:7443", "http://192.0.2.3:7443"}
	many := sample()
	for i := range 17 {
		many.APIs = append(many.APIs, fmt.Sprintf("https://192.0.2.%d:7443", i+2))
	}
	tests := map[string]string{
		"empty":             "",
		"not base64":        "!!!",
		"not json":          "bm90IGpzb24",
		"short secret":      short.Encode(),
		"plain http":        http.Encode(),
		"another edge http": otherHTTP.Encode(),
		"too many edges":    many.Encode(),
	}
	for name, tok := range tests {
		if _, err := DecodeTunnel(tok); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: DecodeTunnel = %v, want ErrInvalid", name, err)
		}
	}
}

func FuzzDecodeTunnel(f *testing.F) {
	f.Add(sample().Encode())
	f.Add("")
	f.Add("eyJ2IjoxfQ")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := DecodeTunnel(s)
		if err != nil {
			return
		}
		again, err := DecodeTunnel(tok.Encode())
		if err != nil || again.TunnelID != tok.TunnelID || !bytes.Equal(again.Secret, tok.Secret) || again.API != tok.API {
			t.Fatalf("re-encoding a valid token changed it: %+v -> %+v, %v", tok, again, err)
		}
	})
}

func TestSecretKinds(t *testing.T) {
	s := Secret{Kind: KindEnroll, ID: uuid.New(), Secret: bytes.Repeat([]byte{1}, 32), API: "https://[2001:db8::1]:7443", CAPin: "sha256/x"}
	got, err := DecodeSecret(s.Encode(), KindEnroll)
	if err != nil || got.ID != s.ID {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := DecodeSecret(s.Encode(), KindDevice); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an enrollment token accepted as a device credential: %v", err)
	}
	if _, err := DecodeTunnel(s.Encode()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an enrollment token accepted as a tunnel token: %v", err)
	}
}

func FuzzDecodeSecret(f *testing.F) {
	f.Add(Secret{Kind: KindDevice, ID: uuid.New(), Secret: bytes.Repeat([]byte{1}, 32), API: "https://192.0.2.1", CAPin: "sha256/x"}.Encode())
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := DecodeSecret(s, KindDevice)
		if err != nil {
			return
		}
		again, err := DecodeSecret(tok.Encode(), KindDevice)
		if err != nil || again.ID != tok.ID || !bytes.Equal(again.Secret, tok.Secret) {
			t.Fatalf("re-encoding a valid credential changed it: %+v -> %+v, %v", tok, again, err)
		}
	})
}

func TestBearer(t *testing.T) {
	tests := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"Bearer   abc", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearerabc", "", false},
		{"Basic abc", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		if got, ok := Bearer(tc.header); got != tc.want || ok != tc.ok {
			t.Errorf("Bearer(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}
