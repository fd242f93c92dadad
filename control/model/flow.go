package model

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Flow log events.
const (
	FlowStart = "start"
	FlowEnd   = "end"
)

// FlowRecord is one line of the edge's flow log: a flow starting or ending.
type FlowRecord struct {
	Time      time.Time   `json:"time"`
	Event     string      `json:"event"`                // start or end
	EndReason string      `json:"end_reason,omitempty"` // expired, evicted or flushed
	VNetID    uuid.UUID   `json:"vnet_id"`
	VNetName  string      `json:"vnet_name"`
	Source    FlowSession `json:"source"`
	Dest      FlowSession `json:"destination"`
	// Edges are the edges of a cluster a flow crossed over a trunk: the
	// ingress edge (the sender's, which applied policy) first, then the far
	// edge; omitted for a flow that stayed on one edge.
	Edges []string `json:"edges,omitempty"`
	// FarCopy marks the far edge's record of a flow that crossed: the ingress
	// edge, Edges[0], logs the same flow. Each edge keeps its own log; to
	// count a cluster's flows across every edge's log, skip these.
	FarCopy  bool           `json:"far_copy,omitempty"`
	Src      netip.AddrPort `json:"src"`
	Dst      netip.AddrPort `json:"dst"`
	Protocol string         `json:"protocol"`
	Action   string         `json:"action"`
	PolicyID *uuid.UUID     `json:"policy_id"` // nil: the default action decided
	// Counters in the flow's direction (out) and of its replies (in).
	PacketsOut uint64    `json:"packets_out"`
	BytesOut   uint64    `json:"bytes_out"`
	PacketsIn  uint64    `json:"packets_in"`
	BytesIn    uint64    `json:"bytes_in"`
	Start      time.Time `json:"start"`
	DurationMS int64     `json:"duration_ms"`
}

// FlowSession names the session at one end of a flow: a device (with its
// user) or a tunnel.
type FlowSession struct {
	Kind       string    `json:"kind"` // client or connector
	DeviceID   uuid.UUID `json:"device_id,omitzero"`
	DeviceName string    `json:"device_name,omitempty"`
	User       string    `json:"user,omitempty"`
	// Groups are the user's groups when the flow was logged.
	Groups     []string  `json:"groups,omitempty"`
	TunnelID   uuid.UUID `json:"tunnel_id,omitzero"`
	TunnelName string    `json:"tunnel_name,omitempty"`
}

// FlowFilter selects flow records; zero fields match everything.
type FlowFilter struct {
	Addr   netip.Addr // source or destination address
	Port   uint16     // source or destination port
	Proto  string
	Action string
	Policy string // policy id
	User   string
	VNet   string // name or id
	Tunnel string // name or id
	Event  string
}

// Match reports whether r passes the filter.
func (f FlowFilter) Match(r FlowRecord) bool {
	pol := ""
	if r.PolicyID != nil {
		pol = r.PolicyID.String()
	}
	switch {
	case f.Addr.IsValid() && r.Src.Addr() != f.Addr && r.Dst.Addr() != f.Addr,
		f.Port != 0 && r.Src.Port() != f.Port && r.Dst.Port() != f.Port,
		f.Proto != "" && r.Protocol != f.Proto,
		f.Action != "" && r.Action != f.Action,
		f.Policy != "" && pol != f.Policy,
		f.User != "" && r.Source.User != f.User && r.Dest.User != f.User,
		f.VNet != "" && r.VNetName != f.VNet && r.VNetID.String() != f.VNet,
		f.Tunnel != "" && !f.tunnel(r.Source) && !f.tunnel(r.Dest),
		f.Event != "" && r.Event != f.Event:
		return false
	}
	return true
}

func (f FlowFilter) tunnel(s FlowSession) bool {
	return s.TunnelName == f.Tunnel || (s.TunnelID != uuid.Nil && s.TunnelID.String() == f.Tunnel)
}

// ProtoName names an IP protocol as flow logs do.
func ProtoName(p uint8) string {
	switch p {
	case 1, 58:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return strconv.Itoa(int(p))
}
