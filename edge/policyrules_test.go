package edge

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router/policy"
)

func cond(sel, op string, vals ...string) model.Expr {
	return model.Expr{Selector: sel, Operator: op, Values: vals}
}

var (
	polA    = uuid.MustParse("00000000-0000-0000-0000-00000000000a")
	polB    = uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	polC    = uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	vnetAID = uuid.MustParse("aaaaaaaa-0000-0000-0000-000000000001")
	tunCID  = uuid.MustParse("cccccccc-0000-0000-0000-000000000003")
	tunDID  = uuid.MustParse("dddddddd-0000-0000-0000-000000000004")
	devID   = uuid.MustParse("11111111-1111-1111-1111-111111111111")
)

// testNames resolves as the data plane does: every vnet and tunnel by name
// and by id.
var testNames = ruleNames{
	VNets:   map[string]uint32{"vnet-a": 1, vnetAID.String(): 1, "vnet-b": 2, "lab": 3},
	Tunnels: map[string][16]byte{"site-c": tunCID, tunCID.String(): tunCID, "site-d": tunDID, tunDID.String(): tunDID},
}

// TestCompileRules checks the translation of the API's records into the
// router's rules: order, fields, operators and parsed, resolved values.
func TestCompileRules(t *testing.T) {
	type want struct {
		id            uuid.UUID
		allow, silent bool
		match         string // policy.Cond.String
	}
	leaf := func(id uuid.UUID, e model.Expr) []model.Policy {
		return []model.Policy{{ID: id, Name: "p", Action: model.ActionBlock, Match: e}}
	}
	block := func(match string) []want { return []want{{id: polA, match: match}} }
	for _, tc := range []struct {
		name string
		in   []model.Policy
		want []want
	}{
		{"precedence order, ties kept", []model.Policy{
			{ID: polC, Name: "c", Precedence: 30, Action: model.ActionBlock, Silent: true, Match: cond(model.SelDstIP, model.OpIs, "192.0.2.7")},
			{ID: polA, Name: "a", Precedence: 10, Action: model.ActionAllow, Match: cond(model.SelDstIP, model.OpIs, "192.0.2.1")},
			{ID: polB, Name: "b", Precedence: 10, Action: model.ActionBlock, Match: cond(model.SelDstIP, model.OpIs, "192.0.2.2")},
		}, []want{
			{polA, true, false, "dst_ip in 192.0.2.1/32"},
			{polB, false, false, "dst_ip in 192.0.2.2/32"},
			{polC, false, true, "dst_ip in 192.0.2.7/32"},
		}},
		{"addresses and prefixes", leaf(polA, cond(model.SelSrcIP, model.OpIn, "192.0.2.0/24", "2001:db8::1", "198.51.100.0/24")),
			block("src_ip in 192.0.2.0/24,2001:db8::1/128,198.51.100.0/24")},
		{"is not", leaf(polA, cond(model.SelDstIP, model.OpIsNot, "203.0.113.9")), block("dst_ip not_in 203.0.113.9/32")},
		{"ports and ranges", leaf(polA, cond(model.SelDstPort, model.OpNotIn, "22", "2200-2222", "0")), block("dst_port not_in 22,2200-2222,0")},
		{"protocols: icmp covers both families", leaf(polA, cond(model.SelProtocol, model.OpIn, "tcp", "icmp")), block("protocol in 6,1,58")},
		{"udp", leaf(polA, cond(model.SelProtocol, model.OpIs, "udp")), block("protocol in 17")},
		{"vnet by name and by id", leaf(polA, cond(model.SelVNet, model.OpIn, "vnet-b", vnetAID.String())), block("vnet in 2,1")},
		{"unknown vnet matches nothing", leaf(polA, cond(model.SelVNet, model.OpIs, "gone")), block("vnet in ")},
		{"vnet regex over names, each once", leaf(polA, cond(model.SelVNet, model.OpMatches, "vnet-.*|aaaaaaaa-.*")), block("vnet in 1,2")},
		{"vnet regex is anchored", leaf(polA, cond(model.SelVNet, model.OpMatches, "vnet")), block("vnet in ")},
		{"tunnel by name", leaf(polA, cond(model.SelTunnel, model.OpIs, "site-d")), block("tunnel in " + tunDID.String())},
		{"tunnel regex", leaf(polA, cond(model.SelTunnel, model.OpMatches, "site-[cd]")), block("tunnel in " + tunCID.String() + "," + tunDID.String())},
		{"device by id", leaf(polA, cond(model.SelDeviceID, model.OpIs, devID.String())), block("device_id in " + devID.String())},
		{"device regex stays a regex", leaf(polA, cond(model.SelDeviceID, model.OpMatches, "11111111-.*")), block("device_id matches ^(?:11111111-.*)$")},
		{"users", leaf(polA, cond(model.SelUserEmail, model.OpNotIn, "alice@example.com", "bob@example.com")), block("user.email not_in alice@example.com,bob@example.com")},
		{"user regex", leaf(polA, cond(model.SelUserEmail, model.OpMatches, `.*@example\.com`)), block(`user.email matches ^(?:.*@example\.com)$`)},
		{"user.email is user_email", leaf(polA, cond(model.SelUser, model.OpIs, "alice@example.com")), block("user.email in alice@example.com")},
		{"user groups", leaf(polA, cond(model.SelUserGroup, model.OpNotIn, "eng", "ops")), block("user.group not_in eng,ops")},
		{"user group regex", leaf(polA, cond(model.SelUserGroup, model.OpMatches, "eng-.*")), block("user.group matches ^(?:eng-.*)$")},
		{"os version compares", leaf(polA, cond(model.SelPostureOSVersion, model.OpGe, "6.1")), block("device.posture.os_version >= 6.1")},
		{"kernel below", leaf(polA, cond(model.SelPostureKernel, model.OpLt, "v6.01.0")), block("device.posture.kernel < 6.1")},
		{"client version above", leaf(polA, cond(model.SelPostureClient, model.OpGt, "0.18")), block("device.posture.client_version > 0.18")},
		{"kernel as text", leaf(polA, cond(model.SelPostureKernel, model.OpIs, "6.1.0-18-amd64")), block("device.posture.kernel in 6.1.0-18-amd64")},
		{"disk encrypted", leaf(polA, cond(model.SelPostureDiskEncrypted, model.OpIs, "true")), block("device.posture.disk_encrypted in true")},
		{"firewall is not false", leaf(polA, cond(model.SelPostureFirewall, model.OpIsNot, "false")), block("device.posture.firewall not_in false")},
		{"os, serial, network", leaf(polA, model.Expr{And: []model.Expr{
			cond(model.SelPostureOS, model.OpIs, "linux"), cond(model.SelPostureSerial, model.OpMatches, "SN-.*"),
			cond(model.SelPostureNetwork, model.OpIn, "office", "lab")}}),
			block("device.posture.os in linux and device.posture.serial matches ^(?:SN-.*)$ and device.posture.network in office,lab")},
		{"groups", leaf(polA, model.Expr{And: []model.Expr{
			cond(model.SelTunnel, model.OpIs, "site-c"),
			{Or: []model.Expr{cond(model.SelDstPort, model.OpIs, "22"), cond(model.SelProtocol, model.OpIs, "icmp")}},
		}}), block("tunnel in " + tunCID.String() + " and (dst_port in 22 or protocol in 1,58)")},
		{"no policies", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := compileRules(tc.in, testNames)
			if err != nil {
				t.Fatal(err)
			}
			if len(rules) != len(tc.want) {
				t.Fatalf("%d rules, want %d", len(rules), len(tc.want))
			}
			for i, r := range rules {
				w := tc.want[i]
				if r.ID != w.id || r.Allow != w.allow || r.Silent != w.silent || r.Match.String() != w.match {
					t.Errorf("rule %d = {%s allow=%v silent=%v %s}, want {%s allow=%v silent=%v %s}",
						i, uuid.UUID(r.ID), r.Allow, r.Silent, r.Match, w.id, w.allow, w.silent, w.match)
				}
			}
			if _, err := policy.NewSet(rules, true, 1); err != nil {
				t.Fatalf("the router refuses the translation: %v", err)
			}
		})
	}
}

// TestCompileRulesRefuses checks that an invalid record is refused with an
// error that names its policy and where in its match the fault is.
func TestCompileRulesRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match model.Expr
		want  string // after "compile policy ssh (id): "
	}{
		{"unknown selector", cond("dst_mac", model.OpIs, "x"), `match: unknown selector "dst_mac"`},
		{"unknown operator", cond(model.SelDstIP, "like", "192.0.2.7"), `match: unknown operator "like"`},
		{"no value", cond(model.SelDstIP, model.OpIn), "match: dst_ip in needs a value"},
		{"is with two values", cond(model.SelDstPort, model.OpIs, "22", "23"), "match: dst_port is takes one value, got 2"},
		{"bad address", cond(model.SelDstIP, model.OpIs, "192.0.2.300"), "match: dst_ip: "},
		{"non-canonical prefix", cond(model.SelSrcIP, model.OpIn, "192.0.2.1/24"), "match: src_ip: "},
		{"empty port range", cond(model.SelDstPort, model.OpIn, "2222-2200"), `match: dst_port: port range "2222-2200" is empty`},
		{"port out of range", cond(model.SelDstPort, model.OpIs, "70000"), `match: dst_port: port "70000" is out of range`},
		{"unknown protocol", cond(model.SelProtocol, model.OpIs, "sctp"), `match: protocol "sctp" is not tcp, udp or icmp`},
		{"bad device id", cond(model.SelDeviceID, model.OpIs, "laptop"), `match: device_id "laptop" is not a device id`},
		{"bad regex", cond(model.SelUserEmail, model.OpMatches, "(alice"), `match: invalid regular expression "(alice"`},
		{"matches on a port", cond(model.SelDstPort, model.OpMatches, "22"), "match: dst_port does not support matches"},
		{"compare a text", cond(model.SelPostureSerial, model.OpGe, "1"), "match: device.posture.serial does not take >="},
		{"compare with no version", cond(model.SelPostureKernel, model.OpGe, "six"), `match: device.posture.kernel >= "six": not a version`},
		{"boolean not a boolean", cond(model.SelPostureFirewall, model.OpIs, "on"), `match: device.posture.firewall "on" is neither true nor false`},
		{"nested", model.Expr{And: []model.Expr{
			cond(model.SelDstIP, model.OpIs, "192.0.2.7"),
			{Or: []model.Expr{cond(model.SelProtocol, model.OpIs, "tcp"), cond(model.SelDstPort, model.OpIs, "ssh")}},
		}}, `match.and[1].or[1]: dst_port: "ssh" is not a port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := []model.Policy{
				{ID: polA, Name: "web", Precedence: 1, Action: model.ActionAllow, Match: cond(model.SelDstPort, model.OpIs, "443")},
				{ID: polC, Name: "ssh", Precedence: 2, Action: model.ActionBlock, Match: tc.match},
			}
			rules, err := compileRules(ps, testNames)
			prefix := "compile policy ssh (" + polC.String() + "): "
			if err == nil || !strings.HasPrefix(err.Error(), prefix+tc.want) {
				t.Fatalf("compileRules = %v, %v; want an error starting %q", rules, err, prefix+tc.want)
			}
		})
	}
}

// compileSet translates policies and builds the router's set, as the data
// plane does.
func compileSet(t *testing.T, ps []model.Policy, defaultAllow bool) *policy.Set {
	t.Helper()
	rules, err := compileRules(ps, testNames)
	if err != nil {
		t.Fatal(err)
	}
	s, err := policy.NewSet(rules, defaultAllow, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCompiledPolicies evaluates translated records: the API's semantics of
// every selector and operator, through the router.
func TestCompiledPolicies(t *testing.T) {
	mpa := netip.MustParseAddr
	guide := compileSet(t, []model.Policy{
		{ID: polB, Name: "block", Precedence: 20, Action: model.ActionBlock, Match: cond(model.SelDstIP, model.OpIs, "192.0.2.7")},
		{ID: polA, Name: "allow", Precedence: 10, Action: model.ActionAllow, Match: model.Expr{And: []model.Expr{
			cond(model.SelDstIP, model.OpIs, "192.0.2.7"),
			cond(model.SelUserEmail, model.OpMatches, ".*@example.com"),
		}}},
		{ID: polC, Name: "ssh", Precedence: 30, Action: model.ActionBlock, Silent: true, Match: model.Expr{And: []model.Expr{
			cond(model.SelTunnel, model.OpIs, "site-c"),
			cond(model.SelDstIP, model.OpIn, "198.51.100.0/24", "2001:db8::/32"),
			cond(model.SelDstPort, model.OpIn, "22", "2200-2222"),
			cond(model.SelProtocol, model.OpIs, "tcp"),
		}}},
	}, true)
	client := &policy.Input{VNet: 1, Proto: policy.ProtoTCP, Src: mpa("100.96.0.7"), Dst: mpa("192.0.2.7"), DstPort: 443, HasPorts: true, Device: devID, User: "alice@example.com"}
	site := &policy.Input{VNet: 1, Proto: policy.ProtoTCP, Src: mpa("203.0.113.5"), Dst: mpa("198.51.100.9"), DstPort: 22, HasPorts: true, Site: true, Tunnel: tunCID}
	with := func(in *policy.Input, f func(*policy.Input)) *policy.Input { c := *in; f(&c); return &c }
	for _, tc := range []struct {
		name string
		in   *policy.Input
		want policy.Decision
	}{
		{"matching user allowed", client, policy.Decision{Allow: true, Policy: polA}},
		{"regex is anchored", with(client, func(in *policy.Input) { in.User = "alice@example.com.evil.test" }), policy.Decision{Policy: polB}},
		{"a site has no user", with(site, func(in *policy.Input) { in.Dst = mpa("192.0.2.7") }), policy.Decision{Policy: polB}},
		{"other destination: default", with(client, func(in *policy.Input) { in.Dst = mpa("192.0.2.8") }), policy.Decision{Allow: true}},
		{"site C to port 22", site, policy.Decision{Silent: true, Policy: polC}},
		{"site C to a port in the range", with(site, func(in *policy.Input) { in.Dst, in.DstPort = mpa("2001:db8::1"), 2210 }), policy.Decision{Silent: true, Policy: polC}},
		{"site D to port 22", with(site, func(in *policy.Input) { in.Tunnel = tunDID }), policy.Decision{Allow: true}},
		{"udp to port 22", with(site, func(in *policy.Input) { in.Proto = policy.ProtoUDP }), policy.Decision{Allow: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := guide.Evaluate(tc.in); got != tc.want {
				t.Fatalf("Evaluate = %+v, want %+v", got, tc.want)
			}
		})
	}

	icmp := &policy.Input{VNet: 1, Proto: policy.ProtoICMP, Src: mpa("10.1.2.3"), Dst: mpa("10.3.0.5"), Site: true, Tunnel: tunCID}
	for _, tc := range []struct {
		name string
		e    model.Expr
		want bool
	}{
		{"is", cond(model.SelSrcIP, model.OpIs, "10.1.2.3"), true},
		{"is not", cond(model.SelSrcIP, model.OpIsNot, "10.1.2.3"), false},
		{"in", cond(model.SelSrcIP, model.OpIn, "192.0.2.0/24", "10.0.0.0/8"), true},
		{"not in", cond(model.SelSrcIP, model.OpNotIn, "192.0.2.0/24"), true},
		{"icmp covers both families", cond(model.SelProtocol, model.OpIs, "icmp"), true},
		{"no port for icmp", cond(model.SelDstPort, model.OpIs, "0"), false},
		{"no port: not in holds", cond(model.SelDstPort, model.OpNotIn, "22"), true},
		{"vnet by name", cond(model.SelVNet, model.OpIs, "vnet-a"), true},
		{"vnet by id", cond(model.SelVNet, model.OpIs, vnetAID.String()), true},
		{"vnet regex over names", cond(model.SelVNet, model.OpMatches, "vnet-[ab]"), true},
		{"tunnel regex", cond(model.SelTunnel, model.OpMatches, "site-d"), false},
		{"unknown vnet matches nothing", cond(model.SelVNet, model.OpIs, "gone"), false},
		{"device of a site", cond(model.SelDeviceID, model.OpIsNot, devID.String()), true},
		{"device regex of a site", cond(model.SelDeviceID, model.OpMatches, ".*"), false},
		{"or", model.Expr{Or: []model.Expr{cond(model.SelVNet, model.OpIs, "vnet-b"), cond(model.SelTunnel, model.OpIs, "site-c")}}, true},
		{"and", model.Expr{And: []model.Expr{cond(model.SelVNet, model.OpIs, "vnet-b"), cond(model.SelTunnel, model.OpIs, "site-c")}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compileSet(t, []model.Policy{{ID: polB, Name: "p", Action: model.ActionBlock, Match: tc.e}}, true)
			if got := !s.Evaluate(icmp).Allow; got != tc.want {
				t.Fatalf("%s: matched = %v, want %v", tc.e, got, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		re   string
		want bool
	}{
		{"11111111-1111-1111-1111-111111111111", true},
		{"11111111-.*", true},
		{"(?i)11111111-1111-1111-1111-11111111111[A-F1]", true},
		{"11111111", false},
		{"22222222-.*", false},
	} {
		s := compileSet(t, []model.Policy{{ID: polB, Name: "p", Action: model.ActionBlock, Match: cond(model.SelDeviceID, model.OpMatches, tc.re)}}, true)
		if got := !s.Evaluate(client).Allow; got != tc.want {
			t.Errorf("device_id matches %s: matched = %v, want %v", tc.re, got, tc.want)
		}
	}
}

// FuzzCompileRules checks that the translation refuses exactly the
// conditions the API refuses, and that the router accepts every rule it
// produces.
func FuzzCompileRules(f *testing.F) {
	f.Add(model.SelDstIP, model.OpIn, "192.0.2.0/24", "2001:db8::1")
	f.Add(model.SelDstPort, model.OpIs, "2200-2222", "")
	f.Add(model.SelVNet, model.OpMatches, "vnet-.*", "")
	f.Add(model.SelDeviceID, model.OpNotIn, devID.String(), "x")
	f.Add(model.SelProtocol, model.OpIsNot, "icmp", "")
	f.Fuzz(func(t *testing.T, sel, op, v1, v2 string) {
		e := cond(sel, op, v1)
		if v2 != "" {
			e.Values = append(e.Values, v2)
		}
		rules, err := compileRules([]model.Policy{{ID: polA, Name: "p", Action: model.ActionBlock, Match: e}}, testNames)
		if verr := model.ValidateCondition(e, "match"); (err == nil) != (verr == nil) {
			t.Fatalf("%s: compileRules = %v, ValidateCondition = %v", e, err, verr)
		}
		if err != nil {
			return
		}
		if _, err := policy.NewSet(rules, true, 1); err != nil {
			t.Fatalf("%s: the router refuses the translation: %v", e, err)
		}
	})
}
