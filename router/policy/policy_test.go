package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"testing"
)

var (
	mpa = netip.MustParseAddr
	mpp = netip.MustParsePrefix
)

var (
	idAllow = [16]byte{15: 0x0a}
	idBlock = [16]byte{15: 0x0b}
	idSSH   = [16]byte{15: 0x0c}
	tunC    = [16]byte{3}
	dev1    = [16]byte{0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11}
)

// anchored compiles a regular expression the way the edge does.
func anchored(expr string) *regexp.Regexp { return regexp.MustCompile("^(?:" + expr + ")$") }

func leaf(f Field, op Op) Cond { return Cond{Op: op, Field: f} }

func prefixes(f Field, op Op, ps ...string) Cond {
	c := leaf(f, op)
	for _, p := range ps {
		c.Prefixes = append(c.Prefixes, mpp(p))
	}
	return c
}

func and(kids ...Cond) Cond { return Cond{Op: And, Kids: kids} }

func or(kids ...Cond) Cond { return Cond{Op: Or, Kids: kids} }

// guide is the rule pair of the private network guide plus a site rule.
func guide(t testing.TB) *Set {
	t.Helper()
	s, err := NewSet([]Rule{
		{ID: idAllow, Allow: true, Match: and(
			prefixes(DstIP, In, "192.0.2.7/32"),
			Cond{Op: Matches, Field: User, Regexp: anchored(`.*@example\.com`)},
		)},
		{ID: idBlock, Match: prefixes(DstIP, In, "192.0.2.7/32")},
		{ID: idSSH, Silent: true, Match: and(
			Cond{Op: In, Field: Tunnel, IDs: [][16]byte{tunC}},
			prefixes(DstIP, In, "198.51.100.0/24", "2001:db8::/32"),
			Cond{Op: In, Field: DstPort, Ports: []PortRange{{22, 22}, {2200, 2222}}},
			Cond{Op: In, Field: Proto, Protos: []uint8{ProtoTCP}},
		)},
	}, true, 7)
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
	site := &Input{VNet: 1, Proto: ProtoICMP, Src: mpa("10.1.2.3"), Dst: mpa("10.3.0.5"), Site: true, Tunnel: [16]byte{1}}
	client := &Input{VNet: 2, Proto: ProtoUDP, Src: mpa("100.96.0.7"), Dst: mpa("2001:db8::5"), DstPort: 53, HasPorts: true, Device: dev1, User: "alice@example.com"}
	for _, tc := range []struct {
		name string
		c    Cond
		in   *Input
		want bool
	}{
		{"in", prefixes(SrcIP, In, "192.0.2.0/24", "10.0.0.0/8"), site, true},
		{"not in", prefixes(SrcIP, NotIn, "192.0.2.0/24"), site, true},
		{"not in a matching prefix", prefixes(SrcIP, NotIn, "10.1.2.3/32"), site, false},
		{"destination", prefixes(DstIP, In, "2001:db8::/32"), client, true},
		{"icmp", Cond{Op: In, Field: Proto, Protos: []uint8{ProtoICMP, ProtoICMPv6}}, site, true},
		{"no port for icmp", Cond{Op: In, Field: DstPort, Ports: []PortRange{{0, 0}}}, site, false},
		{"no port: not in holds", Cond{Op: NotIn, Field: DstPort, Ports: []PortRange{{22, 22}}}, site, true},
		{"port range", Cond{Op: In, Field: DstPort, Ports: []PortRange{{50, 60}}}, client, true},
		{"vnet", Cond{Op: In, Field: VNet, VNets: []uint32{2, 1}}, site, true},
		{"empty set matches nothing", leaf(VNet, In), site, false},
		{"empty set: not in holds", leaf(VNet, NotIn), site, true},
		{"tunnel", Cond{Op: In, Field: Tunnel, IDs: [][16]byte{{1}}}, site, true},
		{"a client has no tunnel", Cond{Op: In, Field: Tunnel, IDs: [][16]byte{{}}}, client, false},
		{"device", Cond{Op: In, Field: Device, IDs: [][16]byte{dev1}}, client, true},
		{"device of a site", Cond{Op: NotIn, Field: Device, IDs: [][16]byte{dev1}}, site, true},
		{"device regex", Cond{Op: Matches, Field: Device, Regexp: anchored("11111111-1111-.*")}, client, true},
		{"device regex is anchored", Cond{Op: Matches, Field: Device, Regexp: anchored("1111-1111")}, client, false},
		{"device regex: a site has no device", Cond{Op: Matches, Field: Device, Regexp: anchored(".*")}, site, false},
		{"user", Cond{Op: In, Field: User, Users: []string{"bob@example.com", "alice@example.com"}}, client, true},
		{"user of a site", Cond{Op: In, Field: User, Users: []string{""}}, site, false},
		{"or", or(Cond{Op: In, Field: VNet, VNets: []uint32{2}}, Cond{Op: In, Field: Tunnel, IDs: [][16]byte{{1}}}), site, true},
		{"and", and(Cond{Op: In, Field: VNet, VNets: []uint32{2}}, Cond{Op: In, Field: Tunnel, IDs: [][16]byte{{1}}}), site, false},
		{"empty and holds", and(), site, true},
		{"empty or does not", or(), site, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSet([]Rule{{ID: idBlock, Match: tc.c}}, true, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := !s.Evaluate(tc.in).Allow; got != tc.want {
				t.Fatalf("%s: matched = %v, want %v", tc.c, got, tc.want)
			}
		})
	}
}

func TestDefaultBlock(t *testing.T) {
	s, err := NewSet(nil, false, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Evaluate(&Input{Dst: mpa("192.0.2.1")}); d.Allow || d.Policy != [16]byte{} {
		t.Fatalf("default deny: %+v", d)
	}
}

func TestNewSetRefusesBadRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Cond
		want string
	}{
		{"zero condition", Cond{}, "match: invalid rule: unknown operator op(0)"},
		{"unknown field", leaf(Field(42), In), "match: invalid rule: unknown field field(42)"},
		{"values of another field", Cond{Op: In, Field: DstIP, Ports: []PortRange{{22, 22}}}, "match: invalid rule: dst_ip in carries values of another field"},
		{"regexp without matches", Cond{Op: In, Field: User, Regexp: anchored("x")}, "match: invalid rule: user.email in carries values of another field"},
		{"matches on an address", Cond{Op: Matches, Field: DstIP, Regexp: anchored("x")}, "match: invalid rule: dst_ip does not support matches"},
		{"matches without a regexp", leaf(Device, Matches), "match: invalid rule: device_id matches takes a regular expression and no values"},
		{"empty port range", Cond{Op: In, Field: DstPort, Ports: []PortRange{{23, 22}}}, "match: invalid rule: dst_port in has the empty range 23-22"},
		{"invalid prefix", Cond{Op: In, Field: SrcIP, Prefixes: []netip.Prefix{{}}}, "match: invalid rule: src_ip in has an invalid prefix"},
		{"group with a field", Cond{Op: And, Field: DstIP}, "match: invalid rule: an and group has a field or values"},
		{"leaf with members", Cond{Op: In, Field: VNet, Kids: []Cond{and()}}, "match: invalid rule: a vnet condition has members"},
		{"nested", and(prefixes(DstIP, In, "192.0.2.0/24"), or(leaf(Proto, Matches))), "match.and[1].or[0]: invalid rule: protocol does not support matches"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSet([]Rule{{ID: idAllow, Allow: true, Match: and()}, {ID: idSSH, Match: tc.c}}, true, 1)
			want := "new rule set: rule 1 (00000000-0000-0000-0000-00000000000c): " + tc.want
			if err == nil || err.Error() != want || !errors.Is(err, ErrInvalid) {
				t.Fatalf("NewSet = %v, want %s", err, want)
			}
		})
	}
}

func TestPutID(t *testing.T) {
	for _, id := range [][16]byte{{}, dev1, {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xa, 0xb, 0xfc}} {
		want := fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
		if got := idText(id); got != want {
			t.Errorf("idText(% x) = %s, want %s", id, got, want)
		}
	}
}

// fleet is a rule set whose deciding rule tests a device-id regex.
func fleet(t testing.TB) *Set {
	t.Helper()
	s, err := NewSet([]Rule{
		{ID: idBlock, Match: and(
			Cond{Op: In, Field: Tunnel, IDs: [][16]byte{tunC}},
			Cond{Op: In, Field: DstPort, Ports: []PortRange{{22, 22}, {2200, 2222}}},
		)},
		{ID: idAllow, Allow: true, Match: and(
			Cond{Op: Matches, Field: Device, Regexp: anchored("11111111-.*")},
			prefixes(DstIP, In, "192.0.2.0/24", "2001:db8::/32"),
			Cond{Op: In, Field: Proto, Protos: []uint8{ProtoTCP, ProtoUDP}},
		)},
		{ID: idSSH, Match: prefixes(DstIP, In, "0.0.0.0/0", "::/0")},
	}, true, 7)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var fleetInput = &Input{Proto: ProtoTCP, Src: mpa("100.96.0.7"), Dst: mpa("192.0.2.7"), DstPort: 443, HasPorts: true, Device: dev1, User: "alice@example.com"}

// TestEvaluateAllocs checks that evaluation does not allocate, a device-id
// regex (matched over the id as text) included.
func TestEvaluateAllocs(t *testing.T) {
	s := fleet(t)
	other := *fleetInput
	other.Device[0] = 0x22
	for _, tc := range []struct {
		name string
		in   *Input
		want Decision
	}{
		{"device regex matches", fleetInput, Decision{Allow: true, Policy: idAllow}},
		{"device regex does not match", &other, Decision{Policy: idSSH}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Evaluate(tc.in); got != tc.want {
				t.Fatalf("Evaluate = %+v, want %+v", got, tc.want)
			}
			if n := testing.AllocsPerRun(1000, func() { s.Evaluate(tc.in) }); n != 0 {
				t.Fatalf("Evaluate allocates %v times per call", n)
			}
		})
	}
	g := guide(t)
	user := &Input{Proto: ProtoTCP, Dst: mpa("192.0.2.7"), DstPort: 443, HasPorts: true, User: "alice@example.com"}
	if n := testing.AllocsPerRun(1000, func() { g.Evaluate(user) }); n != 0 {
		t.Fatalf("Evaluate with a user regex allocates %v times per call", n)
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

func BenchmarkEvaluateDeviceRegex(b *testing.B) {
	s := fleet(b)
	b.ReportAllocs()
	for b.Loop() {
		s.Evaluate(fleetInput)
	}
}
