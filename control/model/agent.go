package model

import (
	"encoding/base64"
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// KeepaliveInterval is how often agents send the edge a WireGuard keepalive
// when idle: it keeps NAT state alive and lets the edge tell a live replica
// from a dead one within a few intervals.
const KeepaliveInterval = time.Second

// DefaultOverlayRange is where client devices get their overlay addresses.
var DefaultOverlayRange = netip.MustParsePrefix("100.96.0.0/12")

// EdgeAddress is the edge's own address in an overlay range (its first host
// address): ICMP errors come from it and agents send heartbeats to it.
func EdgeAddress(overlay netip.Prefix) netip.Addr { return overlay.Masked().Addr().Next() }

// EdgeAddress6 is the edge's own IPv6 address (a ULA): ICMPv6 errors come
// from it, and agents whose site has IPv6 addresses only send heartbeats to it.
var EdgeAddress6 = netip.MustParseAddr("fd00:5359:6564:6765::1")

// EdgeBlock6 holds the IPv6 addresses of the edges: EdgeAddress6, which
// every edge answers at, and each edge's own (EdgeOwnAddress6).
var EdgeBlock6 = netip.PrefixFrom(EdgeAddress6, 64).Masked()

// EdgeOwned returns the prefixes that belong to devices and the edges: the
// overlay range (which holds the edges' IPv4 addresses) and the edges' IPv6
// block. No tunnel may send from them nor take them with a route, whatever
// its routes cover.
func EdgeOwned(overlay netip.Prefix) []netip.Prefix {
	return []netip.Prefix{overlay.Masked(), EdgeBlock6}
}

// Connector is one enrolled replica of a tunnel, identified by the WireGuard
// key it generated; the private key never leaves its host.
type Connector struct {
	ID        uuid.UUID `json:"id"`
	TunnelID  uuid.UUID `json:"tunnel_id"`
	PublicKey string    `json:"public_key"`
	Hostname  string    `json:"hostname"`
	Version   string    `json:"version"`
	// SiteAddrs are the host's addresses inside its tunnel's routed
	// prefixes, as the connector reports them; the edge names the host with
	// those it checks lie in its own site.
	SiteAddrs []netip.Addr `json:"site_addrs,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// ConnectorEnrollment is a connector's request to enroll.
type ConnectorEnrollment struct {
	PublicKey string `json:"public_key"`
	Hostname  string `json:"hostname"`
	Version   string `json:"version"`
	// SiteAddrs are the host's site-side addresses (at most MaxSiteAddrs);
	// nil (JSON null) keeps those enrolled before, empty clears them.
	SiteAddrs []netip.Addr `json:"site_addrs"`
}

// MaxSiteAddrs bounds the site addresses one connector reports.
const MaxSiteAddrs = 16

// CredentialCheckRequest asks the edge whether the agent credential it is
// sent with (a tunnel token or a device credential) is valid.
type CredentialCheckRequest struct {
	// PublicKey, if set, is a WireGuard key (base64) to look up among the
	// keys enrolled under the credential.
	PublicKey string `json:"public_key,omitempty"`
}

// CredentialCheck is the edge's answer to a CredentialCheckRequest: whose
// credential it is, whether the key is enrolled, and how to reach the edge's
// WireGuard endpoint. The check changes nothing.
type CredentialCheck struct {
	// Kind is "tunnel" (a tunnel token) or "device" (a device credential).
	Kind string    `json:"kind"`
	ID   uuid.UUID `json:"id"`   // the tunnel's or the device's
	Name string    `json:"name"` // the tunnel's or the device's
	// KeyEnrolled says whether the request's public key is a replica of the
	// tunnel or the device's key; absent when the request named no key.
	KeyEnrolled *bool    `json:"key_enrolled,omitempty"`
	Edge        EdgePeer `json:"edge"`
}

// EdgePeer is how an agent reaches the edge's WireGuard endpoint.
type EdgePeer struct {
	// Edges lists every healthy edge of the cluster, this one first, for an
	// agent that keeps sessions to two of them; empty for a single edge.
	Edges     []ClusterEdge `json:"edges,omitempty"`
	Endpoint  string        `json:"endpoint"`   // host:port
	PublicKey string        `json:"public_key"` // base64
	// MASQUE is host:port of the edge's CONNECT-IP (HTTP/3) listener; empty
	// when the edge serves no MASQUE.
	MASQUE string `json:"masque,omitempty"`
	// APIs are the API addresses of every healthy edge of the cluster, this
	// one first; an agent turns to the next when one cannot answer. Empty
	// for a single edge.
	APIs []string `json:"apis,omitempty"`
}

// ClusterEdge is one edge of a cluster as an agent reaches it: its
// WireGuard endpoint and key, its MASQUE listener, and the addresses of its
// own at which it answers heartbeats (besides EdgeAddress and EdgeAddress6,
// which every edge answers at), so that an agent can probe it through its
// own WireGuard peer.
type ClusterEdge struct {
	Name       string     `json:"name"`
	Endpoint   string     `json:"endpoint"`   // host:port
	PublicKey  string     `json:"public_key"` // base64
	MASQUE     string     `json:"masque,omitempty"`
	Heartbeat  netip.Addr `json:"heartbeat,omitzero"`
	Heartbeat6 netip.Addr `json:"heartbeat6,omitzero"`
}

// ConnectorConfig is everything a connector needs to run; the edge pushes a
// new one whenever it changes.
type ConnectorConfig struct {
	ConnectorID uuid.UUID `json:"connector_id"`
	TunnelID    uuid.UUID `json:"tunnel_id"`
	TunnelName  string    `json:"tunnel_name"`
	VNetID      uuid.UUID `json:"vnet_id"`
	VNetName    string    `json:"vnet_name"`
	Edge        EdgePeer  `json:"edge"`
	MTU         int       `json:"mtu"`
	// SitePrefixes are this tunnel's own routes: the connector never routes
	// them into its TUN, except where one covers what EdgeOwned names (an
	// egress site's 0.0.0.0/0): that stays the edge's, and other tunnels'
	// more specific routes inside it go into the TUN.
	SitePrefixes []netip.Prefix `json:"site_prefixes"`
	// Routes are the prefixes reachable through the edge from this site: the
	// other tunnels' routes in its virtual network, and the device overlay range.
	Routes []netip.Prefix `json:"routes"`
	// OverlayRange is the range client devices get their addresses from.
	OverlayRange netip.Prefix `json:"overlay_range"`
}

// ValidateKey checks a base64 WireGuard public key.
func ValidateKey(k string) error {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) != 32 {
		return Errorf(KindInvalid, "public key %q is not a base64 WireGuard key (32 bytes)", k)
	}
	return nil
}

// EnrolledConnector is the response to a connector's enrollment.
type EnrolledConnector struct {
	Connector Connector       `json:"connector"`
	Config    ConnectorConfig `json:"config"`
}
