// Package model holds the control plane's records (virtual networks, tunnels,
// routes), their validation, and the typed errors that every layer above the
// store speaks. It imports only the standard library and uuid.
package model

import (
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// DefaultVNetName is the name of the virtual network that a new store starts with.
const DefaultVNetName = "default"

// VNet is a virtual network: a routing domain in which a CIDR may be routed once.
type VNet struct {
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name"`
	Comment   string     `json:"comment"`
	IsDefault bool       `json:"is_default"`
	CreatedAt time.Time  `json:"created_at"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// Deleted reports whether the virtual network has been deleted.
func (v *VNet) Deleted() bool { return v.DeletedAt != nil }

// Tunnel is a named connector identity; its replicas serve the routes that point at it.
type Tunnel struct {
	ID          uuid.UUID    `json:"id"`
	Name        string       `json:"name"`
	CreatedAt   time.Time    `json:"created_at"`
	DeletedAt   *time.Time   `json:"deleted_at,omitempty"`
	Connections []Connection `json:"connections"`
}

// Deleted reports whether the tunnel has been deleted.
func (t *Tunnel) Deleted() bool { return t.DeletedAt != nil }

// Connection is one live connector replica of a tunnel, as the edge sees it.
type Connection struct {
	ID         uuid.UUID `json:"id"`
	Hostname   string    `json:"hostname,omitempty"`
	OriginIP   string    `json:"origin_ip"`
	OpenedAt   time.Time `json:"opened_at"` // when it last came up
	ClientVers string    `json:"client_version,omitempty"`
	// Transport is the session's transport: wireguard or masque.
	Transport string `json:"transport,omitempty"`
	// LastHandshake is when the replica's WireGuard session last completed
	// a handshake; nil for MASQUE and for a replica another edge holds.
	LastHandshake *time.Time `json:"last_handshake,omitempty"`
	// LastHeartbeat is when the edge last heard the replica's heartbeat;
	// nil before the first one and for a replica another edge holds.
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	// State is active (the tunnel's traffic goes to it), standby, or leaving.
	State ReplicaState `json:"state"`
	// Priority is the replica's --priority; the highest up is active.
	Priority int `json:"priority"`
	// Preferred is set while the replica's host holds the site's gateway
	// address (keepalived MASTER); a preferred replica is active.
	Preferred bool `json:"preferred,omitempty"`
	// MissedHeartbeats is set while an active replica misses its heartbeats
	// and still gets the tunnel's traffic, having no standby to hand it to,
	// until its WireGuard session expires.
	MissedHeartbeats bool `json:"missed_heartbeats,omitempty"`
	// Edge names the edge of a cluster that carries the replica's traffic
	// (holds its session, or its agent's active one of two); empty for a
	// single edge.
	Edge string `json:"edge,omitempty"`
	// Standby names the other edges that hold a standby session of the
	// replica (its agent keeps sessions to two edges).
	Standby []string `json:"standby_edges,omitempty"`
	// PathMTU is what the replica's WireGuard session found by path MTU
	// discovery; nil for MASQUE and for a replica another edge holds.
	PathMTU *PathMTU `json:"path_mtu,omitempty"`
}

// ReplicaState is a connector replica's role in its tunnel.
type ReplicaState string

// The replica states.
const (
	ReplicaActive  ReplicaState = "active"
	ReplicaStandby ReplicaState = "standby"
	ReplicaLeaving ReplicaState = "leaving"
)

// Failover asks the edge to make a tunnel's replica active by hand.
type Failover struct {
	// Replica is a connector id or hostname; empty means the best standby.
	Replica string `json:"replica,omitempty"`
}

// Route sends packets for Network, in virtual network VNetID, to tunnel TunnelID.
type Route struct {
	ID         uuid.UUID    `json:"id"`
	Network    netip.Prefix `json:"network"`
	TunnelID   uuid.UUID    `json:"tunnel_id"`
	TunnelName string       `json:"tunnel_name,omitempty"`
	VNetID     uuid.UUID    `json:"vnet_id"`
	VNetName   string       `json:"vnet_name,omitempty"`
	Comment    string       `json:"comment"`
	CreatedAt  time.Time    `json:"created_at"`
	DeletedAt  *time.Time   `json:"deleted_at,omitempty"`
	// Warnings, in the answer to adding a route only (never stored), say
	// what of the network the tunnel does not get: a route that covers the
	// device overlay range or the edge's address (0.0.0.0/0 of an egress
	// site) leaves them to the edge.
	Warnings []string `json:"warnings,omitempty"`
	// Edge, in the answer to a route lookup in a cluster only (never
	// stored), names the edge that carries the tunnel's active replica:
	// where a packet to the address leaves the cluster.
	Edge string `json:"edge,omitempty"`
	// Existing, in the answer to an add with IfNotExists only (never
	// stored), says that the route was already there and nothing changed.
	Existing bool `json:"existing,omitempty"`
}

// Deleted reports whether the route has been deleted.
func (r *Route) Deleted() bool { return r.DeletedAt != nil }

// Overlap is a group of routes in two or more virtual networks whose networks
// overlap; Network is the widest of them and contains all the others.
type Overlap struct {
	Network netip.Prefix `json:"network"`
	Routes  []Route      `json:"routes"`
}

// NewVNet is the request to create a virtual network.
type NewVNet struct {
	Name      string `json:"name"`
	Comment   string `json:"comment"`
	IsDefault bool   `json:"is_default"`
}

// VNetPatch changes the fields of a virtual network that are not nil.
type VNetPatch struct {
	Name      *string `json:"name,omitempty"`
	Comment   *string `json:"comment,omitempty"`
	IsDefault *bool   `json:"is_default,omitempty"`
}

// VNetFilter selects virtual networks; zero fields match everything live.
type VNetFilter struct {
	ID          *uuid.UUID
	Name        string
	IsDefault   *bool
	ShowDeleted bool
}

// NewTunnel is the request to create a tunnel.
type NewTunnel struct {
	Name string `json:"name"`
}

// TunnelFilter selects tunnels; zero fields match everything live.
type TunnelFilter struct {
	ID          *uuid.UUID
	Name        string
	ShowDeleted bool
}

// NewRoute is the request to route a network to a tunnel. VNet and Tunnel
// name their object by name or id; an empty VNet means the default one.
type NewRoute struct {
	Network netip.Prefix `json:"network"`
	Tunnel  string       `json:"tunnel"`
	VNet    string       `json:"vnet,omitempty"`
	Comment string       `json:"comment"`
	// IfNotExists adopts a route that is already there: when the virtual
	// network routes Network to Tunnel already, the add returns that route
	// (Existing set) instead of ErrRouteExists. Network routed to another
	// tunnel is still ErrRouteExists.
	IfNotExists bool `json:"if_not_exists,omitempty"`
}

// RouteFilter selects routes; zero fields match every live route.
type RouteFilter struct {
	VNet        string        // name or id; empty means every vnet
	Tunnel      string        // name or id
	SubsetOf    *netip.Prefix // the route's network lies within this one
	SupersetOf  *netip.Prefix // the route's network contains this one
	Comment     *string       // exact comment
	ShowDeleted bool
}

// CreatedTunnel is a new tunnel together with the token its connectors enroll with.
type CreatedTunnel struct {
	Tunnel Tunnel `json:"tunnel"`
	Token  string `json:"token"`
}
