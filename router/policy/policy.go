// Package policy evaluates network policy on a flow's first packet: rules in
// order, first match wins, a default action when none matches.
//
// Rules are the router's own compiled types. A condition names what it looks
// at with a Field and how with an Op, both small integers, and carries its
// values already parsed: prefixes, port ranges, protocol numbers, virtual
// network indexes, 16-byte ids, compiled regular expressions. The edge
// translates the control plane's records into Rules, resolving names
// (virtual networks, tunnels, and regular expressions over them) as it does,
// so evaluation compares numbers and addresses and does not allocate; only a
// regular expression over a device, user, group or posture text runs per
// evaluation.
//
// User, group and posture conditions look at the flow's Identity (Input.Ident):
// the sending device's, or, for a flow a site sends to a device, the
// destination device's. Version conditions (Ge, Gt, Le, Lt) compare the
// leading dotted numeric part of the reported version (see Version).
//
// It imports the standard library only.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// IP protocol numbers the selectors know.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Input is what a rule can look at: the first packet of a flow, who sent it
// and whose flow it is.
type Input struct {
	VNet     uint32 // the sender's virtual network (router index)
	Proto    uint8
	Src, Dst netip.Addr
	DstPort  uint16
	HasPorts bool // TCP or UDP: DstPort is meaningful
	// Tunnel is the sending site's tunnel; Site says whether it is set.
	Site   bool
	Tunnel [16]byte
	// Device identifies a sending client device.
	Device [16]byte
	// User is the flow's user (the email of Ident's user, or of a device
	// without an identity snapshot); empty for none.
	User string
	// Ident is the flow's identity: the sending device's, or for a flow a
	// site sends to a device the destination device's; nil for none.
	Ident *Identity
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Allow  bool
	Silent bool     // block without a RST or ICMP error
	Policy [16]byte // the matching rule's ID; zero for the default action
}

// Field is what a leaf condition looks at in an Input.
type Field uint8

// Fields. A condition on Tunnel holds only for a site's packets, one on
// Device only for a client device's, one on User, Group or a posture field
// only for a flow with a user or identity (Input.User, Input.Ident).
const (
	DstIP         Field = iota + 1 // Dst, against Cond.Prefixes
	SrcIP                          // Src, against Cond.Prefixes
	DstPort                        // DstPort, against Cond.Ports; never holds without HasPorts
	Proto                          // Proto, against Cond.Protos
	VNet                           // VNet, against Cond.VNets
	Tunnel                         // Tunnel, against Cond.IDs
	Device                         // Device, against Cond.IDs or Cond.Regexp
	User                           // User, against Cond.Users or Cond.Regexp; never holds for an empty User
	Group                          // Ident.Groups: some group is in Cond.Names or matches Cond.Regexp
	OS                             // Ident.Posture.OS, against Cond.Names or Cond.Regexp
	OSVersion                      // Ident.Posture.OSVersion, against Cond.Names, Cond.Regexp or Cond.Version
	Kernel                         // Ident.Posture.Kernel, likewise
	ClientVersion                  // Ident.Posture.ClientVersion, likewise
	DiskEncrypted                  // Ident.Posture.DiskEncrypted, against Cond.Bools
	Firewall                       // Ident.Posture.Firewall, against Cond.Bools
	Serial                         // Ident.Posture.Serial, against Cond.Names or Cond.Regexp
	Network                        // Ident.Posture.Network, against Cond.Names or Cond.Regexp
	maxField      = Network
)

var fieldNames = [...]string{DstIP: "dst_ip", SrcIP: "src_ip", DstPort: "dst_port", Proto: "protocol",
	VNet: "vnet", Tunnel: "tunnel", Device: "device_id", User: "user.email", Group: "user.group",
	OS: "device.posture.os", OSVersion: "device.posture.os_version", Kernel: "device.posture.kernel",
	ClientVersion: "device.posture.client_version", DiskEncrypted: "device.posture.disk_encrypted",
	Firewall: "device.posture.firewall", Serial: "device.posture.serial", Network: "device.posture.network"}

// isVersion reports whether f holds a version that Ge, Gt, Le and Lt compare.
func (f Field) isVersion() bool { return f == OSVersion || f == Kernel || f == ClientVersion }

// isText reports whether f is a posture or group text (Cond.Names).
func (f Field) isText() bool {
	return f == Group || f == OS || f.isVersion() || f == Serial || f == Network
}

// String returns the field's name in the control plane's API.
func (f Field) String() string {
	if int(f) < len(fieldNames) && fieldNames[f] != "" {
		return fieldNames[f]
	}
	return "field(" + strconv.Itoa(int(f)) + ")"
}

// Op is how a condition combines its members or tests its field.
type Op uint8

// Operators.
const (
	And     Op = iota + 1 // every member of Cond.Kids holds (an empty And holds)
	Or                    // some member of Cond.Kids holds (an empty Or does not)
	In                    // the field's value is in the condition's value set
	NotIn                 // it is not
	Matches               // Cond.Regexp matches the field as text (not for addresses, ports, protocols, booleans)
	Ge                    // the field's version is at least Cond.Version (version fields only)
	Gt                    // above it
	Le                    // at most it
	Lt                    // below it
)

var opNames = [...]string{And: "and", Or: "or", In: "in", NotIn: "not_in", Matches: "matches",
	Ge: ">=", Gt: ">", Le: "<=", Lt: "<"}

// isCompare reports whether o compares versions.
func (o Op) isCompare() bool { return o == Ge || o == Gt || o == Le || o == Lt }

// String returns the operator's name.
func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// Cond is a compiled condition: a group (And, Or) of Kids, or a leaf that
// tests one Field against the value set for that field (In, NotIn) or
// against Regexp (Matches). A leaf sets only its field's value set; an empty
// value set matches nothing (a name that resolved to nothing).
type Cond struct {
	Op    Op
	Field Field  // leaves only
	Kids  []Cond // And, Or only

	Prefixes []netip.Prefix // DstIP, SrcIP
	Ports    []PortRange    // DstPort
	Protos   []uint8        // Proto
	VNets    []uint32       // VNet
	IDs      [][16]byte     // Tunnel, Device
	Users    []string       // User
	Names    []string       // Group, OS, OSVersion, Kernel, ClientVersion, Serial, Network
	Bools    []bool         // DiskEncrypted, Firewall
	// Version is what Ge, Gt, Le and Lt compare a version field with.
	Version Version
	// Regexp is matched against the whole value (anchor it when compiling);
	// a device id is matched as its canonical text,
	// 00000000-0000-0000-0000-000000000000.
	Regexp *regexp.Regexp
}

// Rule is a compiled policy: when Match holds, the flow is allowed or
// blocked (Silent: without an answer), and the decision names ID.
type Rule struct {
	ID     [16]byte
	Allow  bool
	Silent bool
	Match  Cond
}

// Set is a compiled, immutable rule set.
type Set struct {
	rules []Rule
	def   Decision
	// Gen numbers the set: a flow decided under another generation is
	// evaluated again.
	Gen uint64
}

// ErrInvalid is wrapped by the errors of NewSet.
var ErrInvalid = errors.New("invalid rule")

// NewSet returns the rule set that evaluates rules in order; defaultAllow is
// the action for flows no rule matches. It checks that each condition is
// well-formed (a known Op and Field, values only for its Field, a Regexp
// exactly for Matches). The set keeps rules: they must not change afterwards.
func NewSet(rules []Rule, defaultAllow bool, gen uint64) (*Set, error) {
	for i := range rules {
		if err := check(&rules[i].Match, "match"); err != nil {
			return nil, fmt.Errorf("new rule set: rule %d (%s): %w", i, idText(rules[i].ID), err)
		}
	}
	return &Set{rules: slices.Clip(rules), def: Decision{Allow: defaultAllow}, Gen: gen}, nil
}

// Len returns the number of rules.
func (s *Set) Len() int { return len(s.rules) }

func check(c *Cond, where string) error {
	switch c.Op {
	case And, Or:
		if c.Field != 0 || c.values() != 0 || c.Regexp != nil {
			return fmt.Errorf("%s: %w: an %s group has a field or values", where, ErrInvalid, c.Op)
		}
		for i := range c.Kids {
			if err := check(&c.Kids[i], fmt.Sprintf("%s.%s[%d]", where, c.Op, i)); err != nil {
				return err
			}
		}
		return nil
	case In, NotIn, Matches, Ge, Gt, Le, Lt:
	default:
		return fmt.Errorf("%s: %w: unknown operator %s", where, ErrInvalid, c.Op)
	}
	if c.Field < DstIP || c.Field > maxField {
		return fmt.Errorf("%s: %w: unknown field %s", where, ErrInvalid, c.Field)
	}
	if c.Kids != nil {
		return fmt.Errorf("%s: %w: a %s condition has members", where, ErrInvalid, c.Field)
	}
	if c.Op.isCompare() {
		switch {
		case !c.Field.isVersion():
			return fmt.Errorf("%s: %w: %s does not support %s: only versions compare", where, ErrInvalid, c.Field, c.Op)
		case !c.Version.OK || c.values() != 0 || c.Regexp != nil:
			return fmt.Errorf("%s: %w: %s %s takes a version and no other values", where, ErrInvalid, c.Field, c.Op)
		}
		return nil
	}
	if c.Version != (Version{}) {
		return fmt.Errorf("%s: %w: %s %s carries a version", where, ErrInvalid, c.Field, c.Op)
	}
	if c.Op == Matches {
		switch {
		case c.Field != Device && c.Field != User && !c.Field.isText():
			return fmt.Errorf("%s: %w: %s does not support matches", where, ErrInvalid, c.Field)
		case c.Regexp == nil || c.values() != 0:
			return fmt.Errorf("%s: %w: %s matches takes a regular expression and no values", where, ErrInvalid, c.Field)
		}
		return nil
	}
	if c.Regexp != nil || c.values() != c.own() {
		return fmt.Errorf("%s: %w: %s %s carries values of another field", where, ErrInvalid, c.Field, c.Op)
	}
	for _, p := range c.Prefixes {
		if !p.IsValid() {
			return fmt.Errorf("%s: %w: %s %s has an invalid prefix", where, ErrInvalid, c.Field, c.Op)
		}
	}
	for _, r := range c.Ports {
		if r.Lo > r.Hi {
			return fmt.Errorf("%s: %w: %s %s has the empty range %d-%d", where, ErrInvalid, c.Field, c.Op, r.Lo, r.Hi)
		}
	}
	return nil
}

// own counts the condition's values for its own field.
func (c *Cond) own() int {
	switch c.Field {
	case DstIP, SrcIP:
		return len(c.Prefixes)
	case DstPort:
		return len(c.Ports)
	case Proto:
		return len(c.Protos)
	case VNet:
		return len(c.VNets)
	case Tunnel, Device:
		return len(c.IDs)
	case User:
		return len(c.Users)
	case DiskEncrypted, Firewall:
		return len(c.Bools)
	}
	if c.Field.isText() {
		return len(c.Names)
	}
	return 0
}

// values counts the condition's values of every field.
func (c *Cond) values() int {
	return len(c.Prefixes) + len(c.Ports) + len(c.Protos) + len(c.VNets) + len(c.IDs) + len(c.Users) +
		len(c.Names) + len(c.Bools)
}

// Evaluate returns the decision of the first rule that matches in, or the
// default action. It does not allocate.
func (s *Set) Evaluate(in *Input) Decision {
	for i := range s.rules {
		if s.rules[i].Match.eval(in) {
			r := &s.rules[i]
			return Decision{Allow: r.Allow, Silent: r.Silent, Policy: r.ID}
		}
	}
	return s.def
}

func (c *Cond) eval(in *Input) bool {
	switch c.Op {
	case And:
		for i := range c.Kids {
			if !c.Kids[i].eval(in) {
				return false
			}
		}
		return true
	case Or:
		for i := range c.Kids {
			if c.Kids[i].eval(in) {
				return true
			}
		}
		return false
	case NotIn:
		return !c.leaf(in)
	}
	return c.leaf(in)
}

// leaf reports whether the positive form (In, Matches) of a condition holds.
func (c *Cond) leaf(in *Input) bool {
	switch c.Field {
	case DstIP:
		return inPrefixes(c.Prefixes, in.Dst)
	case SrcIP:
		return inPrefixes(c.Prefixes, in.Src)
	case DstPort:
		if !in.HasPorts {
			return false
		}
		for _, r := range c.Ports {
			if in.DstPort >= r.Lo && in.DstPort <= r.Hi {
				return true
			}
		}
		return false
	case Proto:
		return slices.Contains(c.Protos, in.Proto)
	case VNet:
		return slices.Contains(c.VNets, in.VNet)
	case Tunnel:
		return in.Site && slices.Contains(c.IDs, in.Tunnel)
	case Device:
		if in.Site {
			return false
		}
		if c.Regexp != nil {
			return matchID(c.Regexp, &in.Device)
		}
		return slices.Contains(c.IDs, in.Device)
	case User:
		if in.User == "" {
			return false
		}
		if c.Regexp != nil {
			return c.Regexp.MatchString(in.User)
		}
		return slices.Contains(c.Users, in.User)
	}
	return c.identity(in.Ident)
}

// identity is leaf for the fields of an Identity: none holds without one,
// nor a posture field without a posture report.
func (c *Cond) identity(id *Identity) bool {
	if id == nil {
		return false
	}
	if c.Field == Group {
		for _, g := range id.Groups {
			if c.text(g) {
				return true
			}
		}
		return false
	}
	p := &id.Posture
	if !p.Reported {
		return false
	}
	switch c.Field {
	case OS:
		return c.text(p.OS)
	case OSVersion:
		return c.version(p.OSVersion, &p.osVersion)
	case Kernel:
		return c.version(p.Kernel, &p.kernel)
	case ClientVersion:
		return c.version(p.ClientVersion, &p.clientVersion)
	case DiskEncrypted:
		return slices.Contains(c.Bools, p.DiskEncrypted)
	case Firewall:
		return slices.Contains(c.Bools, p.Firewall)
	case Serial:
		return c.text(p.Serial)
	case Network:
		return c.text(p.Network)
	}
	return false
}

// text tests a text field: against Regexp, or Names. An empty text is
// nothing and matches nothing.
func (c *Cond) text(s string) bool {
	switch {
	case s == "":
		return false
	case c.Regexp != nil:
		return c.Regexp.MatchString(s)
	}
	return slices.Contains(c.Names, s)
}

// version tests a version field: compared with Version by Ge, Gt, Le, Lt
// (never holding for a text that is no version), else as text.
func (c *Cond) version(s string, v *Version) bool {
	if !c.Op.isCompare() {
		return c.text(s)
	}
	if !v.OK {
		return false
	}
	switch d := v.Compare(c.Version); c.Op {
	case Ge:
		return d >= 0
	case Gt:
		return d > 0
	case Le:
		return d <= 0
	case Lt:
		return d < 0
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

// idBufs holds the scratch buffers that device ids are written into as text
// for a regular expression. regexp keeps its input in pooled state while it
// runs, so a buffer on the stack would escape to the heap on every call; a
// pooled one is reused instead.
var idBufs = sync.Pool{New: func() any { return new([36]byte) }}

// matchID reports whether re matches id's canonical text.
func matchID(re *regexp.Regexp, id *[16]byte) bool {
	b := idBufs.Get().(*[36]byte)
	putID(b, id)
	ok := re.Match(b[:])
	idBufs.Put(b)
	return ok
}

// putID writes id as canonical lowercase text, 8-4-4-4-12 hex digits.
func putID(dst *[36]byte, id *[16]byte) {
	const hex = "0123456789abcdef"
	j := 0
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hex[c>>4], hex[c&0x0f]
		j += 2
	}
}

// idText returns id as canonical text.
func idText(id [16]byte) string {
	var b [36]byte
	putID(&b, &id)
	return string(b[:])
}

// String renders the condition as text, values in their order:
// "dst_ip in 192.0.2.7/32 and (user_email matches ^(?:.*@example\.com)$ or
// ...)". Ids appear as canonical text, virtual networks as router indexes.
func (c Cond) String() string {
	var b strings.Builder
	c.format(&b)
	return b.String()
}

func (c *Cond) format(b *strings.Builder) {
	switch c.Op {
	case And, Or:
		for i := range c.Kids {
			if i > 0 {
				b.WriteString(" " + c.Op.String() + " ")
			}
			k := &c.Kids[i]
			if k.Op == And || k.Op == Or {
				b.WriteByte('(')
				k.format(b)
				b.WriteByte(')')
			} else {
				k.format(b)
			}
		}
		return
	}
	b.WriteString(c.Field.String() + " " + c.Op.String() + " ")
	var vals []string
	for _, p := range c.Prefixes {
		vals = append(vals, p.String())
	}
	for _, r := range c.Ports {
		v := strconv.Itoa(int(r.Lo))
		if r.Hi != r.Lo {
			v += "-" + strconv.Itoa(int(r.Hi))
		}
		vals = append(vals, v)
	}
	for _, p := range c.Protos {
		vals = append(vals, strconv.Itoa(int(p)))
	}
	for _, v := range c.VNets {
		vals = append(vals, strconv.FormatUint(uint64(v), 10))
	}
	for _, id := range c.IDs {
		vals = append(vals, idText(id))
	}
	vals = append(vals, c.Users...)
	vals = append(vals, c.Names...)
	for _, v := range c.Bools {
		vals = append(vals, strconv.FormatBool(v))
	}
	if c.Version.OK {
		vals = append(vals, c.Version.String())
	}
	if c.Regexp != nil {
		vals = append(vals, c.Regexp.String())
	}
	b.WriteString(strings.Join(vals, ","))
}
