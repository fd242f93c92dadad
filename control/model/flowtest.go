package model

import (
	"net/netip"
	"strings"

	"github.com/google/uuid"
)

// FlowTest is a flow to judge with the edge's network policies: its first
// packet, as a device (with its user) or a site's tunnel sends it, or a
// sender with neither. The flow's user, groups and posture are the sending
// device's, or for a site's flow to a device (Dst a device's address) that
// device's; User, Groups and Posture, when given, stand in for them, so
// that admins can try rules for any user or posture.
type FlowTest struct {
	VNet   string   `json:"vnet,omitempty"`   // name or id; empty: the default
	Device string   `json:"device,omitempty"` // the sending device, by name or id
	User   string   `json:"user,omitempty"`   // the flow's user; empty: the device's own
	Groups []string `json:"groups,omitempty"` // the user's groups; nil: the device's own
	// Posture is the device's posture; nil: its last report.
	Posture  *Posture   `json:"posture,omitempty"`
	Tunnel   string     `json:"tunnel,omitempty"` // the sending site's tunnel, by name or id
	Src      netip.Addr `json:"src"`
	Dst      netip.Addr `json:"dst"`
	Protocol string     `json:"protocol"`       // tcp, udp or icmp
	Port     uint16     `json:"port,omitempty"` // the destination port of tcp or udp
}

// FlowTestInput is a FlowTest with its names resolved to ids: what the
// edge's policy engine judges.
type FlowTestInput struct {
	VNetID   uuid.UUID
	TunnelID uuid.UUID // uuid.Nil: not a site
	DeviceID uuid.UUID // uuid.Nil: not a device
	User     string
	Groups   []string
	Posture  *Posture // nil: none reported
	Src, Dst netip.Addr
	Protocol string
	Port     uint16
}

// FlowVerdict is the edge's judgement of a FlowTest.
type FlowVerdict struct {
	Action string `json:"action"`
	Silent bool   `json:"silent,omitempty"`
	// Policy is the rule that matched, first in precedence; nil when none
	// did and the default action decided.
	Policy *Policy `json:"policy"`
	// PolicyID is Policy's id as the edge's engine named it.
	PolicyID *uuid.UUID `json:"policy_id"`
	VNetName string     `json:"vnet_name"`
	// Rules counts the rules the engine held; Rev is the store revision
	// they were read at.
	Rules int   `json:"rules"`
	Rev   int64 `json:"rev"`
}

// ValidateFlowTest checks a flow test's addresses, protocol and port.
func ValidateFlowTest(t FlowTest) error {
	switch {
	case !t.Src.IsValid() || !t.Dst.IsValid():
		return Errorf(KindInvalid, "flow test: a source and a destination address are required")
	case t.Src.Is4() != t.Dst.Is4():
		return Errorf(KindInvalid, "flow test: source %s and destination %s are of different families", t.Src, t.Dst)
	case t.Protocol != "tcp" && t.Protocol != "udp" && t.Protocol != "icmp":
		return Errorf(KindInvalid, "flow test: protocol %q is not tcp, udp or icmp", t.Protocol)
	case t.Protocol == "icmp" && t.Port != 0:
		return Errorf(KindInvalid, "flow test: icmp has no port")
	case t.Device != "" && t.Tunnel != "":
		return Errorf(KindInvalid, "flow test: a flow comes from a device or a tunnel, not both")
	}
	return nil
}

// ParsePosture parses posture fields written FIELD=VALUE (os=linux,
// os_version=12, disk_encrypted=true, ...) into a posture; nil for none.
func ParsePosture(fields []string) (*Posture, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	p := &Posture{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, Errorf(KindInvalid, "posture %q: want FIELD=VALUE", f)
		}
		b, isBool := map[string]bool{"true": true, "false": false}[v]
		switch k = strings.TrimPrefix(k, "device.posture."); k {
		case "os":
			p.OS = v
		case "os_version":
			p.OSVersion = v
		case "kernel":
			p.Kernel = v
		case "client_version":
			p.ClientVersion = v
		case "serial":
			p.Serial = v
		case "network":
			p.Network = v
		case "disk_encrypted", "firewall":
			if !isBool {
				return nil, Errorf(KindInvalid, "posture %s %q is neither true nor false", k, v)
			}
			if k == "firewall" {
				p.Firewall = b
			} else {
				p.DiskEncrypted = b
			}
		default:
			return nil, Errorf(KindInvalid, "posture field %q is not one of os, os_version, kernel, client_version, disk_encrypted, firewall, serial, network", k)
		}
	}
	return p, nil
}
