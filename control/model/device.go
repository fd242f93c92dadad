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
	User       string     `json:"user"`
	// VNetID is the virtual network the device selected; uuid.Nil means the default.
	VNetID    uuid.UUID  `json:"vnet_id"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Revoked reports whether the device was revoked.
func (d *Device) Revoked() bool { return d.RevokedAt != nil }

// EnrollToken lets devices enroll; Token is shown only when it is created.
type EnrollToken struct {
	ID        uuid.UUID  `json:"id"`
	Comment   string     `json:"comment"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Token     string     `json:"token,omitempty"`
}

// NewEnrollToken is the request to create an enrollment token.
type NewEnrollToken struct {
	Comment string        `json:"comment"`
	TTL     time.Duration `json:"ttl"` // 0: never expires
}

// DeviceEnrollment is a client's request to enroll.
type DeviceEnrollment struct {
	Name       string `json:"name"`
	DeviceType string `json:"device_type"`
	OSVersion  string `json:"os_version"`
	Version    string `json:"version"`
	PublicKey  string `json:"public_key"`
	User       string `json:"user"`
}

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

// SplitEntry is one prefix of the split tunnel list.
type SplitEntry struct {
	Address     netip.Prefix `json:"address"`
	Description string       `json:"description"`
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
}

// SelectVNet is a client's request to switch virtual network.
type SelectVNet struct {
	VNet string `json:"vnet"`
}
