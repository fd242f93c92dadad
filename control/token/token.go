// Package token encodes and decodes the tokens agents hold: the tunnel token
// a connector enrolls with, the enrollment token a device enrolls with, and
// the device credential it keeps afterwards. Each carries the edge's API
// address and CA pin, and an id with its secret, as base64url JSON like
// cloudflared's tunnel tokens.
package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/uuid"
)

// Version is the token format this package writes.
const Version = 1

// maxLen bounds a token before decoding; real ones are about 300 bytes.
const maxLen = 4096

// Kinds of token.
const (
	KindTunnel = "tunnel" // connector enrollment and authentication
	KindEnroll = "enroll" // device enrollment
	KindDevice = "device" // device authentication after enrollment
)

// Tunnel is the content of a tunnel token.
type Tunnel struct {
	Version  int       `json:"v"`
	TunnelID uuid.UUID `json:"t"`
	Secret   []byte    `json:"s"`
	API      string    `json:"a"`           // https URL of the edge's control API
	CAPin    string    `json:"p"`           // pki.Pin of the edge's CA
	Endpoint string    `json:"e,omitempty"` // host:port of the edge's WireGuard listener
	EdgeKey  string    `json:"k,omitempty"` // base64 WireGuard public key of the edge
	// APIs are the other edges of the edge's cluster, as https URLs: an agent
	// tries them when API does not answer. Empty for a single edge.
	APIs []string `json:"as,omitempty"`
}

// Secret is the content of an enrollment token or a device credential.
type Secret struct {
	Version int       `json:"v"`
	Kind    string    `json:"kind"`
	ID      uuid.UUID `json:"id"`
	Secret  []byte    `json:"s"`
	API     string    `json:"a"`
	CAPin   string    `json:"p"`
	APIs    []string  `json:"as,omitempty"` // the other edges of the cluster, as in Tunnel
}

// APIList returns the API addresses the token names: API, then the others.
func (t Tunnel) APIList() []string { return append([]string{t.API}, t.APIs...) }

// APIList returns the API addresses the token names: API, then the others.
func (t Secret) APIList() []string { return append([]string{t.API}, t.APIs...) }

// Encode returns the token as text.
func (t Tunnel) Encode() string {
	t.Version = Version
	return encode(t)
}

// Encode returns the token as text.
func (t Secret) Encode() string {
	t.Version = Version
	return encode(t)
}

func encode(v any) string {
	buf, _ := json.Marshal(v) // cannot fail: plain fields only
	return base64.RawURLEncoding.EncodeToString(buf)
}

// ErrInvalid is wrapped by every decoding error.
var ErrInvalid = errors.New("invalid token")

// DecodeTunnel parses and checks a tunnel token.
func DecodeTunnel(s string) (Tunnel, error) {
	var t Tunnel
	if err := decode(s, &t); err != nil {
		return Tunnel{}, err
	}
	if t.TunnelID == uuid.Nil {
		return Tunnel{}, fmt.Errorf("%w: no tunnel id", ErrInvalid)
	}
	if err := check(t.Version, t.Secret, t.APIList(), t.CAPin); err != nil {
		return Tunnel{}, err
	}
	return t, nil
}

// DecodeSecret parses and checks an enrollment token or device credential of the given kind.
func DecodeSecret(s, kind string) (Secret, error) {
	var t Secret
	if err := decode(s, &t); err != nil {
		return Secret{}, err
	}
	if t.Kind != kind {
		return Secret{}, fmt.Errorf("%w: a %q token where a %q token is needed", ErrInvalid, t.Kind, kind)
	}
	if t.ID == uuid.Nil {
		return Secret{}, fmt.Errorf("%w: no id", ErrInvalid)
	}
	if err := check(t.Version, t.Secret, t.APIList(), t.CAPin); err != nil {
		return Secret{}, err
	}
	return t, nil
}

func decode(s string, v any) error {
	s = strings.TrimSpace(s)
	if len(s) == 0 || len(s) > maxLen {
		return fmt.Errorf("%w: length %d", ErrInvalid, len(s))
	}
	buf, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return fmt.Errorf("%w: not base64url", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// maxAPIs bounds the API addresses one token names.
const maxAPIs = 16

func check(version int, secret []byte, apis []string, pin string) error {
	switch {
	case version != Version:
		return fmt.Errorf("%w: version %d, want %d", ErrInvalid, version, Version)
	case len(secret) < 16:
		return fmt.Errorf("%w: secret too short", ErrInvalid)
	case !strings.HasPrefix(pin, "sha256/"):
		return fmt.Errorf("%w: no CA pin", ErrInvalid)
	case len(apis) > maxAPIs:
		return fmt.Errorf("%w: %d API addresses, at most %d", ErrInvalid, len(apis), maxAPIs)
	}
	for _, api := range apis {
		u, err := url.Parse(api)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("%w: API address %q is not an https URL", ErrInvalid, api)
		}
	}
	return nil
}

// Bearer returns the credential of an Authorization header value that uses
// the Bearer scheme (RFC 6750). The scheme is matched case-insensitively and
// may be followed by one or more spaces (RFC 7235, section 2.1).
func Bearer(header string) (string, bool) {
	const scheme = "bearer"
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) || header[len(scheme)] != ' ' {
		return "", false
	}
	cred := strings.TrimLeft(header[len(scheme):], " ")
	return cred, cred != ""
}
