package model

import (
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// Edge is one edge of a cluster, as `switchyard edge list` shows it.
type Edge struct {
	Name      string `json:"name"`
	API       string `json:"api"`                  // the API's URL as agents reach it
	WireGuard string `json:"wireguard"`            // host:port of the WireGuard listener as agents reach it
	PublicKey string `json:"public_key,omitempty"` // base64 WireGuard public key: each edge of a cluster has its own
	MASQUE    string `json:"masque,omitempty"`
	// Heartbeat and Heartbeat6 are the edge's own addresses (from its index
	// in the cluster, model.EdgeOwnAddress): it answers heartbeats there as
	// well as at the address every edge shares.
	Heartbeat  netip.Addr `json:"heartbeat,omitzero"`
	Heartbeat6 netip.Addr `json:"heartbeat6,omitzero"`
	Version    string     `json:"version"`
	Started    time.Time  `json:"started"`
	LastSeen   time.Time  `json:"last_seen"`
	Healthy    bool       `json:"healthy"` // running: its registration is alive
	// Sessions counts the agent sessions the edge holds, from the cluster's
	// session registry.
	Sessions int `json:"sessions"`
}

// Session is one live agent session as a cluster's session registry records
// it: which edge holds it, for whom, in which virtual network, and whether it
// is the one its agent's traffic goes to.
type Session struct {
	Edge      string    `json:"edge"`
	Kind      string    `json:"kind"` // "connector" or "device"
	ID        uuid.UUID `json:"id"`   // the connector or device id
	Tunnel    uuid.UUID `json:"tunnel,omitzero"`
	VNet      uuid.UUID `json:"vnet"`
	Transport string    `json:"transport"` // "wireguard" or "masque"
	// Active is set on a connector replica's session that gets its tunnel's
	// traffic, and on a device session that gets the device's.
	Active bool `json:"active,omitempty"`
	// Standby is set on an agent's standby session (it keeps sessions to
	// two edges): it carries heartbeats only, never traffic.
	Standby bool      `json:"standby,omitempty"`
	Since   time.Time `json:"since"` // when it came up
}

// Session kinds.
const (
	SessionConnector = "connector"
	SessionDevice    = "device"
)
