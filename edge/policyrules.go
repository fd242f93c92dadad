package edge

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"sort"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router/policy"
)

// ruleNames resolves the names and ids that policies use to router
// identifiers.
type ruleNames struct {
	// VNets maps each virtual network's name and id (as text) to its router index.
	VNets map[string]uint32
	// Tunnels maps each tunnel's name and id (as text) to its id.
	Tunnels map[string][16]byte
}

// compileRules translates the control plane's policies into the router's
// rules, in ascending precedence (ties keep their order). Names are resolved
// through names, and a regular expression over virtual network or tunnel
// names becomes the set of those it matches now; a name that does not exist
// matches nothing. An invalid condition is an error that names its policy.
func compileRules(policies []model.Policy, names ruleNames) ([]policy.Rule, error) {
	ps := slices.Clone(policies)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Precedence < ps[j].Precedence })
	rules := make([]policy.Rule, 0, len(ps))
	for _, p := range ps {
		c, err := compileExpr(p.Match, "match", names)
		if err != nil {
			return nil, fmt.Errorf("compile policy %s (%s): %w", p.Name, p.ID, err)
		}
		rules = append(rules, policy.Rule{ID: p.ID, Allow: p.Action == model.ActionAllow, Silent: p.Silent, Match: c})
	}
	return rules, nil
}

// compileExpr translates the condition at where ("match.and[1]").
func compileExpr(e model.Expr, where string, names ruleNames) (policy.Cond, error) {
	if e.And != nil || e.Or != nil {
		c, group, kind := policy.Cond{Op: policy.And}, e.And, "and"
		if e.Or != nil {
			c.Op, group, kind = policy.Or, e.Or, "or"
		}
		c.Kids = make([]policy.Cond, 0, len(group))
		for i, m := range group {
			k, err := compileExpr(m, fmt.Sprintf("%s.%s[%d]", where, kind, i), names)
			if err != nil {
				return policy.Cond{}, err
			}
			c.Kids = append(c.Kids, k)
		}
		return c, nil
	}
	if err := model.ValidateCondition(e, where); err != nil {
		return policy.Cond{}, err
	}
	f, ok := selectorFields[e.Selector]
	if !ok {
		return policy.Cond{}, fmt.Errorf("%s: selector %q has no router field", where, e.Selector)
	}
	c := policy.Cond{Op: policy.In, Field: f}
	if e.Operator == model.OpIsNot || e.Operator == model.OpNotIn {
		c.Op = policy.NotIn
	}
	if op, ok := compareOps[e.Operator]; ok { // ValidateCondition: a version field, one version
		c.Op, c.Version = op, policy.ParseVersion(e.Values[0])
		return c, nil
	}
	if e.Operator == model.OpMatches {
		re, err := regexp.Compile("^(?:" + e.Values[0] + ")$")
		if err != nil {
			return policy.Cond{}, fmt.Errorf("%s: invalid regular expression %q: %w", where, e.Values[0], err)
		}
		switch c.Field {
		default: // matched per flow: a device as its id's text, a user's groups one by one
			c.Op, c.Regexp = policy.Matches, re
		case policy.VNet:
			for name, idx := range names.VNets {
				if re.MatchString(name) && !slices.Contains(c.VNets, idx) {
					c.VNets = append(c.VNets, idx)
				}
			}
			slices.Sort(c.VNets)
		case policy.Tunnel:
			for name, id := range names.Tunnels {
				if re.MatchString(name) && !slices.Contains(c.IDs, id) {
					c.IDs = append(c.IDs, id)
				}
			}
			slices.SortFunc(c.IDs, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
		}
		return c, nil
	}
	for _, v := range e.Values {
		switch c.Field {
		case policy.DstIP, policy.SrcIP:
			p, err := model.ParseIPOrPrefix(v)
			if err != nil {
				return policy.Cond{}, fmt.Errorf("%s: %w", where, err)
			}
			c.Prefixes = append(c.Prefixes, p)
		case policy.DstPort:
			lo, hi, err := model.ParsePortRange(v)
			if err != nil {
				return policy.Cond{}, fmt.Errorf("%s: %w", where, err)
			}
			c.Ports = append(c.Ports, policy.PortRange{Lo: lo, Hi: hi})
		case policy.Proto:
			nums, ok := protocolNumbers[v]
			if !ok {
				return policy.Cond{}, fmt.Errorf("%s: protocol %q is not tcp, udp or icmp", where, v)
			}
			c.Protos = append(c.Protos, nums...)
		case policy.VNet:
			if idx, ok := names.VNets[v]; ok {
				c.VNets = append(c.VNets, idx)
			}
		case policy.Tunnel:
			if id, ok := names.Tunnels[v]; ok {
				c.IDs = append(c.IDs, id)
			}
		case policy.Device:
			id, err := uuid.Parse(v)
			if err != nil {
				return policy.Cond{}, fmt.Errorf("%s: device_id %q: %w", where, v, err)
			}
			c.IDs = append(c.IDs, id)
		case policy.User:
			c.Users = append(c.Users, v)
		case policy.DiskEncrypted, policy.Firewall:
			c.Bools = append(c.Bools, v == "true")
		default: // the group and posture texts
			c.Names = append(c.Names, v)
		}
	}
	return c, nil
}

// selectorFields maps each of the API's selectors to the router's field.
var selectorFields = map[string]policy.Field{
	model.SelDstIP: policy.DstIP, model.SelSrcIP: policy.SrcIP, model.SelDstPort: policy.DstPort,
	model.SelProtocol: policy.Proto, model.SelVNet: policy.VNet, model.SelTunnel: policy.Tunnel,
	model.SelDeviceID: policy.Device, model.SelUserEmail: policy.User, model.SelUser: policy.User,
	model.SelUserGroup: policy.Group, model.SelPostureOS: policy.OS, model.SelPostureOSVersion: policy.OSVersion,
	model.SelPostureKernel: policy.Kernel, model.SelPostureClient: policy.ClientVersion,
	model.SelPostureDiskEncrypted: policy.DiskEncrypted, model.SelPostureFirewall: policy.Firewall,
	model.SelPostureSerial: policy.Serial, model.SelPostureNetwork: policy.Network,
}

// compareOps maps the API's version comparisons to the router's.
var compareOps = map[string]policy.Op{model.OpGe: policy.Ge, model.OpGt: policy.Gt, model.OpLe: policy.Le, model.OpLt: policy.Lt}

// protocolNumbers maps each protocol name the API knows to its IP protocol
// numbers: icmp covers both families.
var protocolNumbers = map[string][]uint8{
	"tcp":  {policy.ProtoTCP},
	"udp":  {policy.ProtoUDP},
	"icmp": {policy.ProtoICMP, policy.ProtoICMPv6},
}
