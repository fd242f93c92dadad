package policy

import (
	"net/netip"
	"testing"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

var mpa = netip.MustParseAddr

func cond(sel, op string, vals ...string) model.Expr {
	return model.Expr{Selector: sel, Operator: op, Values: vals}
}

var (
	idAllow = uuid.MustParse("00000000-0000-0000-0000-00000000000a")
	idBlock = uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	idSSH   = uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	tunC    = [16]byte{3}
	dev1    = uuid.MustParse("11111111-1111-1111-1111-111111111111")
)

// guide is the rule pair of the private network guide plus a site rule,
// deliberately given out of order.
func guide(t testing.TB) *Set {
	t.Helper()
	s, err := Compile([]model.Policy{
		{ID: idBlock, Name: "block", Precedence: 20, Action: model.ActionBlock, Match: cond(model.SelDstIP, model.OpIs, "192.0.2.7")},
		{ID: idAllow, Name: "allow", Precedence: 10, Action: model.ActionAllow, Match: model.Expr{And: []model.Expr{
			cond(model.SelDstIP, model.OpIs, "192.0.2.7"),
			cond(model.SelUserEmail, model.OpMatches, ".*@example.com"),
		}}},
		{ID: idSSH, Name: "ssh", Precedence: 30, Action: model.ActionBlock, Silent: true, Match: model.Expr{And: []model.Expr{
			cond(model.SelTunnel, model.OpIs, "site-c"),
			cond(model.SelDstIP, model.OpIn, "198.51.100.0/24", "2001:db8::/32"),
			cond(model.SelDstPort, model.OpIn, "22", "2200-2222"),
			cond(model.SelProtocol, model.OpIs, "tcp"),
		}}},
	}, true, Names{Tunnels: map[string][16]byte{"site-c": tunC}}, 7)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEvaluate(t *testing.T) {
	s := guide(t)
	client := func(user, dst string) *Input {
		return &Input{Proto: ProtoTCP, Src: mpa("100.96.0.7"), Dst: mpa(dst), DstPort: 443, HasPorts: true, Device: dev1, User: user}
	}
	site := func(tun [16]byte, dst string, port uint16) *Input {
		return &Input{Proto: ProtoTCP, Src: mpa("203.0.113.5"), Dst: mpa(dst), DstPort: port, HasPorts: true, Site: true, Tunnel: tun}
	}
	for _, tc := range []struct {
		name string
		in   *Input
		want Decision
	}{
		{"matching user allowed", client("alice@example.com", "192.0.2.7"), Decision{Allow: true, Policy: idAllow}},
		{"regex is anchored", client("alice@example.com.evil.test", "192.0.2.7"), Decision{Policy: idBlock}},
		{"other user blocked", client("bob@example.net", "192.0.2.7"), Decision{Policy: idBlock}},
		{"a site has no user", site(tunC, "192.0.2.7", 80), Decision{Policy: idBlock}},
		{"other destination: default", client("bob@example.net", "192.0.2.8"), Decision{Allow: true}},
		{"site C to port 22", site(tunC, "198.51.100.9", 22), Decision{Silent: true, Policy: idSSH}},
		{"site C to a port in the range", site(tunC, "2001:db8::1", 2210), Decision{Silent: true, Policy: idSSH}},
		{"site C to port 80", site(tunC, "198.51.100.9", 80), Decision{Allow: true}},
		{"another site to port 22", site([16]byte{9}, "198.51.100.9", 22), Decision{Allow: true}},
		{"a client to port 22", &Input{Proto: ProtoTCP, Dst: mpa("198.51.100.9"), DstPort: 22, HasPorts: true}, Decision{Allow: true}},
		{"udp to port 22", &Input{Proto: ProtoUDP, Dst: mpa("198.51.100.9"), DstPort: 22, HasPorts: true, Site: true, Tunnel: tunC}, Decision{Allow: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Evaluate(tc.in); got != tc.want {
				t.Fatalf("Evaluate = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestOperators(t *testing.T) {
	names := Names{VNets: map[string]uint32{"vnet-a": 1, "vnet-b": 2}, Tunnels: map[string][16]byte{"site-a": {1}, "site-b": {2}}}
	in := &Input{VNet: 1, Proto: ProtoICMP, Src: mpa("10.1.2.3"), Dst: mpa("10.3.0.5"), Site: true, Tunnel: [16]byte{1}}
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
		{"vnet regex over names", cond(model.SelVNet, model.OpMatches, "vnet-[ab]"), true},
		{"tunnel regex", cond(model.SelTunnel, model.OpMatches, "site-b"), false},
		{"unknown vnet matches nothing", cond(model.SelVNet, model.OpIs, "gone"), false},
		{"device of a site", cond(model.SelDeviceID, model.OpIsNot, dev1.String()), true},
		{"or", model.Expr{Or: []model.Expr{cond(model.SelVNet, model.OpIs, "vnet-b"), cond(model.SelTunnel, model.OpIs, "site-a")}}, true},
		{"and", model.Expr{And: []model.Expr{cond(model.SelVNet, model.OpIs, "vnet-b"), cond(model.SelTunnel, model.OpIs, "site-a")}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile([]model.Policy{{ID: idBlock, Action: model.ActionBlock, Match: tc.e}}, true, names, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := !s.Evaluate(in).Allow; got != tc.want {
				t.Fatalf("%s: matched = %v, want %v", tc.e, got, tc.want)
			}
		})
	}
}

func TestDefaultBlock(t *testing.T) {
	s, err := Compile(nil, false, Names{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Evaluate(&Input{Dst: mpa("192.0.2.1")}); d.Allow || d.Policy != uuid.Nil {
		t.Fatalf("default deny: %+v", d)
	}
}

func TestCompileRefusesBadRule(t *testing.T) {
	_, err := Compile([]model.Policy{{Name: "bad", Action: model.ActionBlock, Match: cond("dst_mac", model.OpIs, "x")}}, true, Names{}, 1)
	if err == nil {
		t.Fatal("compiled a rule with an unknown selector")
	}
}

func BenchmarkEvaluate(b *testing.B) {
	s := guide(b)
	in := &Input{Proto: ProtoTCP, Src: mpa("203.0.113.5"), Dst: mpa("198.51.100.9"), DstPort: 80, HasPorts: true, Site: true, Tunnel: tunC}
	b.ReportAllocs()
	for b.Loop() {
		s.Evaluate(in)
	}
}

func BenchmarkEvaluateRegex(b *testing.B) {
	s := guide(b)
	in := &Input{Proto: ProtoTCP, Dst: mpa("192.0.2.7"), DstPort: 443, HasPorts: true, User: "alice@example.com"}
	b.ReportAllocs()
	for b.Loop() {
		s.Evaluate(in)
	}
}
