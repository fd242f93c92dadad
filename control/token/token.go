// Package token encodes and decodes the tunnel token with which a connector
// enrolls: the edge's API address and CA pin, its WireGuard endpoint and public
// key, and the tunnel's id and secret, as base64url JSON like cloudflared's.
package token

import (
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

// Tunnel is the content of a tunnel token.
type Tunnel struct {
	Version  int       `json:"v"`
	TunnelID uuid.UUID `json:"t"`
	Secret   []byte    `json:"s"`
	API      string    `json:"a"`           // https URL of the edge's control API
	CAPin    string    `json:"p"`           // pki.Pin of the edge's CA
	Endpoint string    `json:"e,omitempty"` // host:port of the edge's WireGuard listener
	EdgeKey  string    `json:"k,omitempty"` // base64 WireGuard public key of the edge
}

// Encode returns the token as text.
func (t Tunnel) Encode() string {
	t.Version = Version
	buf, _ := json.Marshal(t) // cannot fail: plain fields only
	return base64.RawURLEncoding.EncodeToString(buf)
}

// ErrInvalid is wrapped by every decoding error.
var ErrInvalid = errors.New("invalid tunnel token")

// DecodeTunnel parses and checks a tunnel token.
func DecodeTunnel(s string) (Tunnel, error) {
	var t Tunnel
	s = strings.TrimSpace(s)
	if len(s) == 0 || len(s) > maxLen {
		return t, fmt.Errorf("%w: length %d", ErrInvalid, len(s))
	}
	buf, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return t, fmt.Errorf("%w: not base64url", ErrInvalid)
	}
	dec := json.NewDecoder(strings.NewReader(string(buf)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Tunnel{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case t.Version != Version:
		return Tunnel{}, fmt.Errorf("%w: version %d, want %d", ErrInvalid, t.Version, Version)
	case t.TunnelID == uuid.Nil:
		return Tunnel{}, fmt.Errorf("%w: no tunnel id", ErrInvalid)
	case len(t.Secret) < 16:
		return Tunnel{}, fmt.Errorf("%w: secret too short", ErrInvalid)
	case !strings.HasPrefix(t.CAPin, "sha256/"):
		return Tunnel{}, fmt.Errorf("%w: no CA pin", ErrInvalid)
	}
	u, err := url.Parse(t.API)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return Tunnel{}, fmt.Errorf("%w: API address %q is not an https URL", ErrInvalid, t.API)
	}
	return t, nil
}
