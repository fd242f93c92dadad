package policy

import (
	"errors"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"6.1.0-18-amd64", "6.1"}, // the leading numeric dotted part: 6.1.0
		{"6.1", "6.1"},
		{"24.04", "24.4"},
		{"12", "12"},
		{"v0.18.2", "0.18.2"},
		{"1.2.", "1.2"},
		{"1..2", "1"},
		{"1.2.3.4.5.6.7", "1.2.3.4.5.6"},
		{"99999999999", "4294967295"},
		{"", "(none)"},
		{"rolling", "(none)"},
		{"v", "(none)"},
		{".1", "(none)"},
	} {
		if got := ParseVersion(tc.in).String(); got != tc.want {
			t.Errorf("ParseVersion(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"6.1", "6.1.0", 0},
		{"6.1.0-18-amd64", "6.1", 0},
		{"6.10", "6.9", 1}, // numbers, not text
		{"6.1.1", "6.1", 1},
		{"5.15.0-91-generic", "6.1", -1},
		{"24.04", "24.4", 0},
		{"2", "10", -1},
	} {
		if got := ParseVersion(tc.a).Compare(ParseVersion(tc.b)); got != tc.want {
			t.Errorf("%s vs %s = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// postured is an identity as the edge builds one from a device record.
func postured(user string, groups []string, p Posture) *Input {
	p.Reported = true
	id := NewIdentity(user, groups, p)
	return &Input{Proto: ProtoTCP, DstPort: 443, HasPorts: true, User: user, Ident: id}
}

func TestIdentityFields(t *testing.T) {
	good := postured("alice@example.com", []string{"eng", "ops"}, Posture{OS: "linux", OSVersion: "12",
		Kernel: "6.1.0-18-amd64", ClientVersion: "v0.18.2", DiskEncrypted: true, Firewall: true,
		Serial: "SN-0001", Network: "office"})
	bad := postured("bob@example.com", []string{"sales"}, Posture{OS: "linux", OSVersion: "11",
		Kernel: "5.10.0-26-amd64", ClientVersion: "dev", Serial: ""})
	unreported := &Input{Proto: ProtoTCP, User: "carol@example.com", Ident: NewIdentity("carol@example.com", []string{"eng"}, Posture{})}
	none := &Input{Proto: ProtoTCP, Site: true}
	ver := func(f Field, op Op, v string) Cond { return Cond{Op: op, Field: f, Version: ParseVersion(v)} }
	for _, tc := range []struct {
		name                         string
		c                            Cond
		good, bad, unreported, noone bool
	}{
		{"group in", Cond{Op: In, Field: Group, Names: []string{"ops", "admins"}}, true, false, false, false},
		{"group not in", Cond{Op: NotIn, Field: Group, Names: []string{"ops"}}, false, true, true, true},
		{"group matches", Cond{Op: Matches, Field: Group, Regexp: anchored(`sal.*`)}, false, true, false, false},
		{"os is", Cond{Op: In, Field: OS, Names: []string{"linux"}}, true, true, false, false},
		{"os_version is text", Cond{Op: In, Field: OSVersion, Names: []string{"12"}}, true, false, false, false},
		{"os_version >= 12", ver(OSVersion, Ge, "12"), true, false, false, false},
		{"os_version > 11", ver(OSVersion, Gt, "11"), true, false, false, false},
		{"os_version <= 11", ver(OSVersion, Le, "11"), false, true, false, false},
		{"os_version < 12", ver(OSVersion, Lt, "12"), false, true, false, false},
		{"kernel >= 6.1", ver(Kernel, Ge, "6.1"), true, false, false, false},
		{"kernel > 6.1 (6.1.0-18 is 6.1.0)", ver(Kernel, Gt, "6.1"), false, false, false, false},
		{"kernel < 6.1", ver(Kernel, Lt, "6.1"), false, true, false, false},
		{"kernel matches", Cond{Op: Matches, Field: Kernel, Regexp: anchored(`.*-amd64`)}, true, true, false, false},
		{"client_version >= 0.18", ver(ClientVersion, Ge, "0.18"), true, false, false, false},
		{"client_version < 0.18: dev is no version", ver(ClientVersion, Lt, "0.18"), false, false, false, false},
		{"disk_encrypted is true", Cond{Op: In, Field: DiskEncrypted, Bools: []bool{true}}, true, false, false, false},
		{"disk_encrypted is false", Cond{Op: In, Field: DiskEncrypted, Bools: []bool{false}}, false, true, false, false},
		{"disk_encrypted is_not true", Cond{Op: NotIn, Field: DiskEncrypted, Bools: []bool{true}}, false, true, true, true},
		{"firewall is true", Cond{Op: In, Field: Firewall, Bools: []bool{true}}, true, false, false, false},
		{"serial in", Cond{Op: In, Field: Serial, Names: []string{"SN-0001"}}, true, false, false, false},
		{"serial matches anything: not an empty one", Cond{Op: Matches, Field: Serial, Regexp: anchored(`.*`)}, true, false, false, false},
		{"network is", Cond{Op: In, Field: Network, Names: []string{"office"}}, true, false, false, false},
		{"user in", Cond{Op: In, Field: User, Users: []string{"alice@example.com"}}, true, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSet([]Rule{{ID: idAllow, Allow: true, Match: tc.c}}, false, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range []struct {
				who  string
				in   *Input
				want bool
			}{{"good", good, tc.good}, {"bad", bad, tc.bad}, {"unreported", unreported, tc.unreported}, {"no identity", none, tc.noone}} {
				if got := s.Evaluate(x.in).Allow; got != x.want {
					t.Errorf("%s: %s holds = %v, want %v", x.who, tc.c, got, x.want)
				}
				if n := testing.AllocsPerRun(1000, func() { s.Evaluate(x.in) }); n != 0 {
					t.Errorf("%s: Evaluate allocates %v times per call", x.who, n)
				}
			}
		})
	}
}

func TestNewSetRefusesBadIdentityRule(t *testing.T) {
	for name, c := range map[string]Cond{
		"compare on a text field":   {Op: Ge, Field: OS, Version: ParseVersion("1")},
		"compare without a version": {Op: Ge, Field: Kernel},
		"compare with names":        {Op: Lt, Field: Kernel, Version: ParseVersion("6"), Names: []string{"6"}},
		"version on in":             {Op: In, Field: Kernel, Names: []string{"6"}, Version: ParseVersion("6")},
		"names on a boolean":        {Op: In, Field: Firewall, Names: []string{"true"}},
		"booleans on a group":       {Op: In, Field: Group, Bools: []bool{true}},
		"matches on a boolean":      {Op: Matches, Field: DiskEncrypted, Regexp: anchored("true")},
		"unknown field":             {Op: In, Field: maxField + 1},
	} {
		if _, err := NewSet([]Rule{{Match: c}}, true, 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: NewSet = %v, want ErrInvalid", name, err)
		}
	}
}

func TestIdentityCondString(t *testing.T) {
	c := and(Cond{Op: Ge, Field: Kernel, Version: ParseVersion("6.1")}, Cond{Op: In, Field: DiskEncrypted, Bools: []bool{true}},
		Cond{Op: In, Field: Group, Names: []string{"eng", "ops"}})
	want := "device.posture.kernel >= 6.1 and device.posture.disk_encrypted in true and user.group in eng,ops"
	if got := c.String(); got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}
