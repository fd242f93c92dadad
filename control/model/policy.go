package model

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Policy actions.
const (
	ActionAllow = "allow"
	ActionBlock = "block"
)

// Policy is a network policy rule. The edge evaluates the live rules in
// ascending Precedence on a flow's first packet; the first whose Match holds
// decides, and the default action decides when none does.
type Policy struct {
	ID         uuid.UUID `json:"id"`
	Name       string    `json:"name"`
	Precedence int       `json:"precedence"`
	Action     string    `json:"action"`
	// Silent drops blocked packets instead of answering with a TCP RST or an
	// ICMP administratively-prohibited error.
	Silent    bool      `json:"silent,omitempty"`
	Match     Expr      `json:"match"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Expr is a policy condition: a leaf (Selector Operator Values) or a group
// in which all (And) or any (Or) of the members must hold.
type Expr struct {
	And      []Expr   `json:"and,omitempty"`
	Or       []Expr   `json:"or,omitempty"`
	Selector string   `json:"selector,omitempty"`
	Operator string   `json:"operator,omitempty"`
	Values   []string `json:"values,omitempty"`
}

// Policy selectors: what a condition looks at.
const (
	SelDstIP    = "dst_ip"     // destination address; values are IPs or CIDRs
	SelSrcIP    = "src_ip"     // source address; values are IPs or CIDRs
	SelDstPort  = "dst_port"   // destination port; values are ports or ranges (8000-8080)
	SelProtocol = "protocol"   // tcp, udp or icmp
	SelVNet     = "vnet"       // the virtual network the sender is in, by name or id
	SelUser     = "user.email" // the flow's user (see below)
	SelDeviceID = "device_id"  // the sending device
	SelTunnel   = "tunnel"     // the tunnel whose site sent the packet, by name or id
	// SelUserEmail is the old name of SelUser, still accepted: both
	// compile alike.
	SelUserEmail = "user_email"
)

// Identity selectors look at the flow's user and device: the sending
// device's, or for a flow a site sends to a device the destination
// device's (client to client: the sender's). None holds for a flow between
// sites, nor a posture selector for a device that never reported posture.
const (
	SelUserGroup            = "user.group"                    // one of the user's groups
	SelPostureOS            = "device.posture.os"             // linux
	SelPostureOSVersion     = "device.posture.os_version"     // a version: 12, 24.04
	SelPostureKernel        = "device.posture.kernel"         // a version: 6.1.0-18-amd64
	SelPostureClient        = "device.posture.client_version" // a version: 0.18.2
	SelPostureDiskEncrypted = "device.posture.disk_encrypted" // true or false
	SelPostureFirewall      = "device.posture.firewall"       // true or false
	SelPostureSerial        = "device.posture.serial"         // the DMI serial
	SelPostureNetwork       = "device.posture.network"        // a posture network's name
)

// VersionSelectors take the comparison operators (>=, >, <=, <). They
// compare the leading dotted numeric part of the reported version as
// numbers: a kernel "6.1.0-18-amd64" is 6.1.0 (its build suffix never
// counts), "24.04" is 24.4, a leading "v" is skipped, missing parts are
// zero (6.1 equals 6.1.0), and a report that does not start with a number
// satisfies no comparison.
var VersionSelectors = []string{SelPostureOSVersion, SelPostureKernel, SelPostureClient}

// BoolSelectors take true or false, with is and is_not.
var BoolSelectors = []string{SelPostureDiskEncrypted, SelPostureFirewall}

// Policy operators.
const (
	OpIs      = "is"
	OpIsNot   = "is_not"
	OpIn      = "in"
	OpNotIn   = "not_in"
	OpMatches = "matches" // RE2, anchored at both ends
	// Version comparisons, for VersionSelectors only.
	OpGe = ">="
	OpGt = ">"
	OpLe = "<="
	OpLt = "<"
)

// Selectors lists every selector, for help texts and errors (not the
// alias SelUserEmail, which is accepted too).
var Selectors = []string{SelDstIP, SelSrcIP, SelDstPort, SelProtocol, SelVNet, SelUser, SelUserGroup, SelDeviceID, SelTunnel,
	SelPostureOS, SelPostureOSVersion, SelPostureKernel, SelPostureClient, SelPostureDiskEncrypted,
	SelPostureFirewall, SelPostureSerial, SelPostureNetwork}

// Operators lists every operator.
var Operators = []string{OpIs, OpIsNot, OpIn, OpNotIn, OpMatches, OpGe, OpGt, OpLe, OpLt}

// versionValue is what a comparison's value must look like.
var versionValue = regexp.MustCompile(`^[vV]?[0-9]+(\.[0-9]+){0,5}$`)

// Policy precedences lie in MinPrecedence..MaxPrecedence; anything else is
// refused, so that adding "after the last" can never overflow.
const (
	MinPrecedence = 0
	MaxPrecedence = 1_000_000_000
)

// ValidatePrecedence checks that a precedence lies in the documented range.
func ValidatePrecedence(p int) error {
	if p < MinPrecedence || p > MaxPrecedence {
		return Errorf(KindInvalid, "precedence %d is out of range (%d-%d)", p, MinPrecedence, MaxPrecedence)
	}
	return nil
}

// NewPolicy is the request to create a policy; a nil Precedence puts the
// rule after every existing one.
type NewPolicy struct {
	Name       string `json:"name"`
	Precedence *int   `json:"precedence,omitempty"`
	Action     string `json:"action"`
	Silent     bool   `json:"silent,omitempty"`
	Match      Expr   `json:"match"`
	Comment    string `json:"comment"`
}

// PolicyPatch changes the fields of a policy that are not nil.
type PolicyPatch struct {
	Name       *string `json:"name,omitempty"`
	Precedence *int    `json:"precedence,omitempty"`
	Action     *string `json:"action,omitempty"`
	Silent     *bool   `json:"silent,omitempty"`
	Match      *Expr   `json:"match,omitempty"`
	Comment    *string `json:"comment,omitempty"`
}

// PolicyMove moves a policy: to a precedence, or just before or after another
// policy (by name or id). Exactly one field is set.
type PolicyMove struct {
	Precedence *int   `json:"precedence,omitempty"`
	Before     string `json:"before,omitempty"`
	After      string `json:"after,omitempty"`
}

// PolicyDefault is the action for flows no rule matches.
type PolicyDefault struct {
	Action string `json:"action"`
}

// ValidateAction checks a policy action.
func ValidateAction(a string) error {
	if a != ActionAllow && a != ActionBlock {
		return Errorf(KindInvalid, "action %q is neither %q nor %q", a, ActionAllow, ActionBlock)
	}
	return nil
}

// maxExprNodes bounds a policy's conditions.
const maxExprNodes = 256

// ValidatePolicy checks a policy's name, action, comment and conditions.
func ValidatePolicy(p Policy) error {
	if err := ValidateName("policy", p.Name); err != nil {
		return err
	}
	if err := ValidateAction(p.Action); err != nil {
		return Errorf(KindInvalid, "policy %s: %s", p.Name, err)
	}
	if err := ValidateComment(p.Comment); err != nil {
		return err
	}
	n := 0
	if err := validateExpr(p.Match, "match", &n); err != nil {
		return Errorf(KindInvalid, "policy %s: %s", p.Name, err)
	}
	return nil
}

func validateExpr(e Expr, where string, n *int) error {
	if *n++; *n > maxExprNodes {
		return fmt.Errorf("more than %d conditions", maxExprNodes)
	}
	leaf := e.Selector != "" || e.Operator != "" || len(e.Values) > 0
	switch {
	case leaf && (e.And != nil || e.Or != nil), e.And != nil && e.Or != nil:
		return fmt.Errorf("%s: a condition is a selector, an \"and\" or an \"or\", not several", where)
	case e.And != nil || e.Or != nil:
		group, kind := e.And, "and"
		if e.Or != nil {
			group, kind = e.Or, "or"
		}
		if len(group) == 0 {
			return fmt.Errorf("%s: empty %q group", where, kind)
		}
		for i, m := range group {
			if err := validateExpr(m, fmt.Sprintf("%s.%s[%d]", where, kind, i), n); err != nil {
				return err
			}
		}
		return nil
	case !leaf:
		return fmt.Errorf("%s: no condition (a rule that matches everything says so with dst_ip in 0.0.0.0/0, ::/0)", where)
	}
	return ValidateCondition(e, where)
}

// ValidateCondition checks one leaf condition: a known selector and operator,
// the right number of values, each well-formed for the selector.
func ValidateCondition(e Expr, where string) error {
	if !slices.Contains(Selectors, e.Selector) && e.Selector != SelUserEmail {
		return fmt.Errorf("%s: unknown selector %q (want one of %s)", where, e.Selector, strings.Join(Selectors, ", "))
	}
	if !slices.Contains(Operators, e.Operator) {
		return fmt.Errorf("%s: unknown operator %q (want one of %s)", where, e.Operator, strings.Join(Operators, ", "))
	}
	switch {
	case len(e.Values) == 0:
		return fmt.Errorf("%s: %s %s needs a value", where, e.Selector, e.Operator)
	case isCompare(e.Operator) && !slices.Contains(VersionSelectors, e.Selector):
		return fmt.Errorf("%s: %s does not take %s: only %s compare as versions", where, e.Selector, e.Operator, strings.Join(VersionSelectors, ", "))
	case slices.Contains(BoolSelectors, e.Selector) && e.Operator != OpIs && e.Operator != OpIsNot:
		return fmt.Errorf("%s: %s takes is or is_not with true or false, not %s", where, e.Selector, e.Operator)
	case (e.Operator == OpIs || e.Operator == OpIsNot || e.Operator == OpMatches || isCompare(e.Operator)) && len(e.Values) != 1:
		return fmt.Errorf("%s: %s %s takes one value, got %d (use in or not_in for a list)", where, e.Selector, e.Operator, len(e.Values))
	}
	for _, v := range e.Values {
		if err := validateValue(e.Selector, e.Operator, v); err != nil {
			return fmt.Errorf("%s: %s", where, err)
		}
	}
	return nil
}

// isCompare reports whether op compares versions.
func isCompare(op string) bool { return op == OpGe || op == OpGt || op == OpLe || op == OpLt }

func validateValue(sel, op, v string) error {
	if isCompare(op) {
		if !versionValue.MatchString(v) {
			return fmt.Errorf("%s %s %q: not a version (digits and dots: 6.1, 24.04, v0.18)", sel, op, v)
		}
		return nil
	}
	if op == OpMatches {
		if sel == SelDstIP || sel == SelSrcIP || sel == SelDstPort || sel == SelProtocol {
			return fmt.Errorf("%s does not support matches; use is or in", sel)
		}
		if _, err := regexp.Compile(v); err != nil {
			return fmt.Errorf("invalid regular expression %q: %v", v, err)
		}
		return nil
	}
	switch sel {
	case SelDstIP, SelSrcIP:
		if _, err := ParseIPOrPrefix(v); err != nil {
			return fmt.Errorf("%s: %s", sel, err.Error())
		}
	case SelDstPort:
		if _, _, err := ParsePortRange(v); err != nil {
			return fmt.Errorf("%s: %s", sel, err.Error())
		}
	case SelProtocol:
		if v != "tcp" && v != "udp" && v != "icmp" {
			return fmt.Errorf("protocol %q is not tcp, udp or icmp", v)
		}
	case SelDeviceID:
		if _, err := uuid.Parse(v); err != nil {
			return fmt.Errorf("device_id %q is not a device id", v)
		}
	case SelPostureDiskEncrypted, SelPostureFirewall:
		if v != "true" && v != "false" {
			return fmt.Errorf("%s %q is neither true nor false", sel, v)
		}
	case SelVNet, SelTunnel, SelUserEmail, SelUser, SelUserGroup, SelPostureOS, SelPostureOSVersion, SelPostureKernel,
		SelPostureClient, SelPostureSerial, SelPostureNetwork:
		if v == "" || len(v) > 256 {
			return fmt.Errorf("%s value must be 1 to 256 bytes", sel)
		}
	}
	return nil
}

// ParseIPOrPrefix parses an address (as a host prefix) or a canonical CIDR.
func ParseIPOrPrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return ParsePrefix(s)
}

// ParsePortRange parses a port (22) or an inclusive range (8000-8080) of 0..65535.
func ParsePortRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if !isRange {
		b = a
	}
	l, err1 := strconv.ParseUint(a, 10, 32)
	h, err2 := strconv.ParseUint(b, 10, 32)
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, Errorf(KindInvalid, "%q is not a port or a port range (22, 8000-8080)", s)
	case l > 65535 || h > 65535:
		return 0, 0, Errorf(KindInvalid, "port %q is out of range 0-65535", s)
	case l > h:
		return 0, 0, Errorf(KindInvalid, "port range %q is empty: its start is above its end", s)
	}
	return uint16(l), uint16(h), nil
}

// String renders a condition as text: "dst_ip is 10.128.0.7 and (user_email
// matches .*@example.com or ...)".
func (e Expr) String() string {
	if e.And != nil || e.Or != nil {
		group, sep := e.And, " and "
		if e.Or != nil {
			group, sep = e.Or, " or "
		}
		parts := make([]string, len(group))
		for i, k := range group {
			parts[i] = k.String()
			if k.And != nil || k.Or != nil {
				parts[i] = "(" + parts[i] + ")"
			}
		}
		return strings.Join(parts, sep)
	}
	return e.Selector + " " + e.Operator + " " + strings.Join(e.Values, ",")
}

// ParseCondition parses one condition written as "SELECTOR OPERATOR VALUE":
// "dst_port in 22,8000-8080", "user.email matches .*@example.com",
// "tunnel is not site-c" ("is not" and "not in" may be written with a space),
// "device.posture.os_version >= 6.1", "device.posture.disk_encrypted is true".
func ParseCondition(s string) (Expr, error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return Expr{}, Errorf(KindInvalid, "condition %q: want SELECTOR OPERATOR VALUE (e.g. \"dst_ip is 192.0.2.7\")", s)
	}
	e := Expr{Selector: f[0], Operator: f[1]}
	rest := f[2:]
	if (f[1] == "is" && f[2] == "not") || (f[1] == "not" && f[2] == "in") {
		if len(f) < 4 {
			return Expr{}, Errorf(KindInvalid, "condition %q has no value", s)
		}
		e.Operator, rest = map[string]string{"is": OpIsNot, "not": OpNotIn}[f[1]], f[3:]
	}
	value := strings.Join(rest, " ")
	if e.Operator == OpIn || e.Operator == OpNotIn {
		for _, v := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' }) {
			e.Values = append(e.Values, v)
		}
	} else {
		e.Values = []string{value}
	}
	if err := ValidateCondition(e, "condition"); err != nil {
		return Expr{}, Errorf(KindInvalid, "%s", err.Error())
	}
	return e, nil
}

// WithNames returns e with the virtual network and tunnel ids it holds (the
// edge stores rules by id) replaced by names[id] where names has one, for
// display; e is not changed.
func (e Expr) WithNames(names map[string]string) Expr {
	out := e
	for _, g := range []*[]Expr{&out.And, &out.Or} {
		if *g != nil {
			kids := make([]Expr, len(*g))
			for i, k := range *g {
				kids[i] = k.WithNames(names)
			}
			*g = kids
		}
	}
	if e.Selector == SelVNet || e.Selector == SelTunnel {
		out.Values = make([]string, len(e.Values))
		for i, v := range e.Values {
			out.Values[i] = v
			if n, ok := names[v]; ok {
				out.Values[i] = n
			}
		}
	}
	return out
}
