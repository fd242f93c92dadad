// Package policy compiles the control plane's network policies into a rule
// set the edge evaluates on a flow's first packet: rules in precedence order,
// first match wins, a default action when none matches. Names (virtual
// networks, tunnels) and regular expressions over them are resolved at
// compile time, so evaluation compares numbers and addresses; only a
// user_email regex runs per evaluation.
//
// It imports control/model (plain records) and the standard library only.
package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

// IP protocol numbers the selectors know.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Input is what a rule can look at: the first packet of a flow and who sent it.
type Input struct {
	VNet     uint32 // the sender's virtual network (router index)
	Proto    uint8
	Src, Dst netip.Addr
	DstPort  uint16
	HasPorts bool // TCP or UDP: DstPort is meaningful
	// Tunnel is the sending site's tunnel; Site says whether it is set.
	Site   bool
	Tunnel [16]byte
	// Device and User identify a sending client device.
	Device [16]byte
	User   string
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Allow  bool
	Silent bool      // block without a RST or ICMP error
	Policy uuid.UUID // the matching rule; uuid.Nil for the default action
}

// Names resolves the names and ids that rules use to router identifiers.
type Names struct {
	// VNets maps each virtual network's name and id (as text) to its router index.
	VNets map[string]uint32
	// Tunnels maps each tunnel's name and id (as text) to its id.
	Tunnels map[string][16]byte
}

// Set is a compiled, immutable rule set.
type Set struct {
	rules []rule
	def   Decision
	// Gen numbers the set: a flow decided under another generation is
	// evaluated again.
	Gen uint64
}

type rule struct {
	match    node
	decision Decision
}

type op uint8

const (
	opAnd op = iota
	opOr
	opLeaf
)

// node is a compiled condition.
type node struct {
	op       op
	kids     []node
	sel      string
	negate   bool
	prefixes []netip.Prefix
	ports    [][2]uint16
	protos   []uint8
	vnets    []uint32
	ids      [][16]byte
	strs     []string
	re       *regexp.Regexp
}

// Compile orders policies by precedence and compiles them; defaultAllow is
// the action for flows no rule matches. Names a rule uses that do not exist
// match nothing.
func Compile(policies []model.Policy, defaultAllow bool, names Names, gen uint64) (*Set, error) {
	ps := slices.Clone(policies)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Precedence < ps[j].Precedence })
	s := &Set{def: Decision{Allow: defaultAllow}, Gen: gen}
	for _, p := range ps {
		n, err := compile(p.Match, names)
		if err != nil {
			return nil, fmt.Errorf("compile policy %s (%s): %w", p.Name, p.ID, err)
		}
		s.rules = append(s.rules, rule{match: n, decision: Decision{Allow: p.Action == model.ActionAllow, Silent: p.Silent, Policy: p.ID}})
	}
	return s, nil
}

// Len returns the number of rules.
func (s *Set) Len() int { return len(s.rules) }

func compile(e model.Expr, names Names) (node, error) {
	if e.And != nil || e.Or != nil {
		n := node{op: opAnd}
		group := e.And
		if e.Or != nil {
			n.op, group = opOr, e.Or
		}
		for _, k := range group {
			c, err := compile(k, names)
			if err != nil {
				return node{}, err
			}
			n.kids = append(n.kids, c)
		}
		return n, nil
	}
	if err := model.ValidateCondition(e, "condition"); err != nil {
		return node{}, err
	}
	n := node{op: opLeaf, sel: e.Selector, negate: e.Operator == model.OpIsNot || e.Operator == model.OpNotIn}
	if e.Operator == model.OpMatches {
		re, err := regexp.Compile("^(?:" + e.Values[0] + ")$")
		if err != nil {
			return node{}, err
		}
		switch e.Selector {
		case model.SelUserEmail:
			n.re = re
		case model.SelDeviceID:
			n.re = re // device ids are matched as text
		case model.SelVNet:
			for name, idx := range names.VNets {
				if re.MatchString(name) && !slices.Contains(n.vnets, idx) {
					n.vnets = append(n.vnets, idx)
				}
			}
		case model.SelTunnel:
			for name, id := range names.Tunnels {
				if re.MatchString(name) && !slices.Contains(n.ids, id) {
					n.ids = append(n.ids, id)
				}
			}
		}
		return n, nil
	}
	for _, v := range e.Values {
		switch e.Selector {
		case model.SelDstIP, model.SelSrcIP:
			p, err := model.ParseIPOrPrefix(v)
			if err != nil {
				return node{}, err
			}
			n.prefixes = append(n.prefixes, p)
		case model.SelDstPort:
			lo, hi, err := model.ParsePortRange(v)
			if err != nil {
				return node{}, err
			}
			n.ports = append(n.ports, [2]uint16{lo, hi})
		case model.SelProtocol:
			switch v {
			case "tcp":
				n.protos = append(n.protos, ProtoTCP)
			case "udp":
				n.protos = append(n.protos, ProtoUDP)
			case "icmp":
				n.protos = append(n.protos, ProtoICMP, ProtoICMPv6)
			}
		case model.SelVNet:
			if idx, ok := names.VNets[v]; ok {
				n.vnets = append(n.vnets, idx)
			}
		case model.SelTunnel:
			if id, ok := names.Tunnels[v]; ok {
				n.ids = append(n.ids, id)
			}
		case model.SelDeviceID:
			id, err := uuid.Parse(v)
			if err != nil {
				return node{}, err
			}
			n.ids = append(n.ids, id)
		case model.SelUserEmail:
			n.strs = append(n.strs, v)
		}
	}
	return n, nil
}

// Evaluate returns the decision of the first rule that matches in, or the
// default action.
func (s *Set) Evaluate(in *Input) Decision {
	for i := range s.rules {
		if s.rules[i].match.eval(in) {
			return s.rules[i].decision
		}
	}
	return s.def
}

func (n *node) eval(in *Input) bool {
	switch n.op {
	case opAnd:
		for i := range n.kids {
			if !n.kids[i].eval(in) {
				return false
			}
		}
		return true
	case opOr:
		for i := range n.kids {
			if n.kids[i].eval(in) {
				return true
			}
		}
		return false
	}
	return n.leaf(in) != n.negate
}

// leaf reports whether the positive form (is, in, matches) of a condition holds.
func (n *node) leaf(in *Input) bool {
	switch n.sel {
	case model.SelDstIP:
		return inPrefixes(n.prefixes, in.Dst)
	case model.SelSrcIP:
		return inPrefixes(n.prefixes, in.Src)
	case model.SelDstPort:
		if !in.HasPorts {
			return false
		}
		for _, r := range n.ports {
			if in.DstPort >= r[0] && in.DstPort <= r[1] {
				return true
			}
		}
		return false
	case model.SelProtocol:
		return slices.Contains(n.protos, in.Proto)
	case model.SelVNet:
		return slices.Contains(n.vnets, in.VNet)
	case model.SelTunnel:
		return in.Site && slices.Contains(n.ids, in.Tunnel)
	case model.SelDeviceID:
		if in.Site {
			return false
		}
		if n.re != nil {
			return n.re.MatchString(uuid.UUID(in.Device).String())
		}
		return slices.Contains(n.ids, in.Device)
	case model.SelUserEmail:
		if in.Site || in.User == "" {
			return false
		}
		if n.re != nil {
			return n.re.MatchString(in.User)
		}
		return slices.Contains(n.strs, in.User)
	}
	return false
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
