package model

import (
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// Device is an enrolled user device (a `switchyard client`), with the fields
// of the device API users know.
type Device struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	DeviceType string     `json:"device_type"`
	OSVersion  string     `json:"os_version"`
	Version    string     `json:"version"`
	IP         netip.Addr `json:"ip"`
	Key        string     `json:"key"`
	Created    time.Time  `json:"created"`
	Updated    time.Time  `json:"updated"`
	LastSeen   *time.Time `json:"last_seen"`
	// LastHandshake is when this edge last completed a WireGuard handshake
	// with the device; nil for none (or a device on MASQUE). Never stored.
	LastHandshake *time.Time `json:"last_handshake,omitempty"`
	// PathMTU is what path MTU discovery found on the device's WireGuard
	// session with this edge; nil for none. Never stored.
	PathMTU *PathMTU `json:"path_mtu,omitempty"`
	User    string   `json:"user"`
	// Subject and Groups are the user's OpenID Connect subject and groups
	// from their last sign-in; empty for a device enrolled with a token.
	Subject string   `json:"subject,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	// SessionExpiresAt is when the user's sign-in ends: the edge then drops
	// the device's traffic until they sign in again. nil: no session (a
	// token-enrolled device, which lasts until revoked).
	SessionExpiresAt *time.Time `json:"session_expires_at,omitempty"`
	// Posture is what the device last reported about its host; nil before
	// its first report.
	Posture *Posture `json:"posture,omitempty"`
	// VNetID is the virtual network the device selected; uuid.Nil means the default.
	VNetID    uuid.UUID  `json:"vnet_id"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// UnrevokedAt is when an admin lifted the revocation: the record stays
	// revoked (its credential dead), but its key may enroll again.
	UnrevokedAt *time.Time `json:"unrevoked_at,omitempty"`
	// EnrollToken is the enrollment token the device last enrolled with;
	// uuid.Nil for devices enrolled before this was recorded.
	EnrollToken uuid.UUID `json:"enroll_token,omitzero"`
	// Edge and StandbyEdges name, in a cluster's device list, the edge that
	// carries the device's traffic and those that hold its standby sessions;
	// empty for a device offline or on a single edge. Never stored.
	Edge         string   `json:"edge,omitempty"`
	StandbyEdges []string `json:"standby_edges,omitempty"`
}

// Revoked reports whether the device was revoked.
func (d *Device) Revoked() bool { return d.RevokedAt != nil }

// SessionEnded reports whether the device's user's sign-in ended by now;
// false for a device without a session.
func (d *Device) SessionEnded(now time.Time) bool {
	return d.SessionExpiresAt != nil && !now.Before(*d.SessionExpiresAt)
}

// KeyBanned reports whether the device's key is refused at enrollment: it
// was revoked and no admin lifted the revocation.
func (d *Device) KeyBanned() bool { return d.RevokedAt != nil && d.UnrevokedAt == nil }

// DefaultEnrollTTL is the lifetime of an enrollment token created without one.
const DefaultEnrollTTL = 24 * time.Hour

// EnrollToken lets devices enroll; Token is shown only when it is created.
// Records stored before User, MaxUses and Uses existed decode with their zero
// values: no user, unlimited uses.
type EnrollToken struct {
	ID        uuid.UUID  `json:"id"`
	Comment   string     `json:"comment"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"` // nil: never expires
	// User is the user every device enrolled with this token belongs to
	// (what policies match as user_email); empty means no user.
	User string `json:"user,omitempty"`
	// MaxUses bounds how many devices the token enrolls; 0 means no bound.
	MaxUses int `json:"max_uses,omitempty"`
	// Uses counts the devices the token enrolled.
	Uses  int    `json:"uses"`
	Token string `json:"token,omitempty"`
}

// NewEnrollToken is the request to create an enrollment token.
type NewEnrollToken struct {
	Comment string `json:"comment"`
	// TTL is the token's lifetime; 0 means DefaultEnrollTTL.
	TTL time.Duration `json:"ttl"`
	// NoExpiry makes a token that never expires (TTL must then be 0).
	NoExpiry bool `json:"no_expiry,omitempty"`
	// User is the user the token's devices belong to; empty means none.
	User string `json:"user,omitempty"`
	// MaxUses bounds how many devices the token enrolls; 0 means no bound.
	MaxUses int `json:"max_uses,omitempty"`
}

// DeviceEnrollment is a client's request to enroll.
type DeviceEnrollment struct {
	Name       string `json:"name"`
	DeviceType string `json:"device_type"`
	OSVersion  string `json:"os_version"`
	Version    string `json:"version"`
	PublicKey  string `json:"public_key"`
	// User must be empty or the enrollment token's user: a device's user
	// comes from its token, never from the device.
	User string `json:"user,omitempty"`
	// Login is the handle of a completed OpenID Connect sign-in
	// (POST /v1/agent/login): the device enrolls as that user, under the
	// first enrollment rule that admits them, instead of with a token.
	Login string `json:"login,omitempty"`
	// Posture is the device's first posture report; nil: none yet.
	Posture *Posture `json:"posture,omitempty"`
	// KeyProof is a secret the device derives from its private key
	// (KeyProofLen bytes). The first enrollment of a key registers it;
	// re-enrolling the key needs the same proof or Credential.
	KeyProof []byte `json:"key_proof,omitempty"`
	// Credential is the current credential of the device enrolled with
	// PublicKey, which proves a re-enrollment is the device's own.
	Credential string `json:"credential,omitempty"`
}

// KeyProofLen is the length of DeviceEnrollment.KeyProof.
const KeyProofLen = 32

// EnrolledDevice is the response to a device's enrollment: the device and the
// credential it uses from then on (shown once).
type EnrolledDevice struct {
	Device     Device       `json:"device"`
	Credential string       `json:"credential"`
	Config     DeviceConfig `json:"config"`
}

// Split tunnel modes.
const (
	SplitExclude = "exclude" // everything goes through the tunnel but the listed prefixes
	SplitInclude = "include" // only the listed prefixes go through the tunnel
)

// SplitTunnel is the split tunnel setting that every client applies.
type SplitTunnel struct {
	Mode    string       `json:"mode"`
	Entries []SplitEntry `json:"entries"`
}

// SplitEntry is one entry of the split tunnel list: a prefix (Address) or
// a domain (Domain), exactly one of them.
type SplitEntry struct {
	Address netip.Prefix `json:"address,omitzero"`
	// Domain is canonical (ParseSplitDomain): "corp.example" is that name
	// and its subdomains, "*.corp.example" its subdomains only. Clients
	// route the addresses their DNS stub relays for it.
	Domain      string `json:"domain,omitempty"`
	Description string `json:"description"`
}

// Key names the entry: its prefix or its domain.
func (e SplitEntry) Key() string {
	if e.Domain != "" {
		return e.Domain
	}
	return e.Address.String()
}

// DefaultExcludes is the Exclude-mode list users know: local, link-local,
// multicast and reserved ranges stay off the tunnel.
func DefaultExcludes() []SplitEntry {
	var out []SplitEntry
	for _, s := range []string{
		"10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
		"192.168.0.0/16", "224.0.0.0/24", "240.0.0.0/4", "255.255.255.255/32",
		"fe80::/10", "fd00::/8", "ff01::/16", "ff02::/16", "ff03::/16", "ff04::/16", "ff05::/16",
	} {
		out = append(out, SplitEntry{Address: netip.MustParsePrefix(s)})
	}
	return out
}

// DeviceConfig is everything a client needs to run; the edge pushes a new one
// whenever it changes.
type DeviceConfig struct {
	DeviceID     uuid.UUID    `json:"device_id"`
	IP           netip.Addr   `json:"ip"`
	OverlayRange netip.Prefix `json:"overlay_range"`
	Edge         EdgePeer     `json:"edge"`
	MTU          int          `json:"mtu"`
	VNetID       uuid.UUID    `json:"vnet_id"`
	VNetName     string       `json:"vnet_name"`
	SplitTunnel  SplitTunnel  `json:"split_tunnel"`
	DNS          DeviceDNS    `json:"dns"`
	// SessionExpiresAt is when the user's sign-in ends; nil: no session.
	SessionExpiresAt *time.Time `json:"session_expires_at,omitempty"`
	// PostureNetworks are the networks the client checks its addresses
	// against for Posture.Network.
	PostureNetworks []PostureNetwork `json:"posture_networks,omitempty"`
}

// DeviceTypeWireGuard is the device type of a stock WireGuard device, one an
// admin registered with its public key (RegisterDevice) rather than a
// Switchyard client that enrolled.
const DeviceTypeWireGuard = "wireguard"

// RegisterDevice is an admin's request to register a stock WireGuard device
// by its public key: it holds no credential and sends no heartbeats.
type RegisterDevice struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
	// VNet is the virtual network (name or id) it sends into; empty: the default.
	VNet string `json:"vnet,omitempty"`
	// User is the user policies match it as (user_email); empty: none.
	User string `json:"user,omitempty"`
}

// RegisteredDevice is the answer to RegisterDevice: the device and the
// configuration its WireGuard client needs (the edge serving the request
// is its peer).
type RegisteredDevice struct {
	Device Device       `json:"device"`
	Config DeviceConfig `json:"config"`
}

// SelectVNet is a client's request to switch virtual network.
type SelectVNet struct {
	VNet string `json:"vnet"`
}
