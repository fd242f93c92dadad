package edge

import (
	"net/netip"
	"testing"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
)

// TestJudgeFlow checks the flow test against the rules as the edge compiles
// them: the first matching rule in precedence decides (the ones before it
// that do not match are passed over), identities come from the sender, and
// the default decides the rest.
func TestJudgeFlow(t *testing.T) {
	vnetB := uuid.MustParse("bbbbbbbb-0000-0000-0000-000000000002")
	s := registry.Snapshot{Rev: 7,
		VNets:   []model.VNet{{ID: vnetAID, Name: "vnet-a"}, {ID: vnetB, Name: "vnet-b"}},
		Tunnels: []model.Tunnel{{ID: tunCID, Name: "site-c"}},
		Policies: []model.Policy{
			// listed out of order: precedence decides
			{ID: polB, Name: "web", Precedence: 20, Action: model.ActionAllow, Match: model.Expr{And: []model.Expr{
				cond(model.SelDstIP, model.OpIn, "192.0.2.0/24"), cond(model.SelDstPort, model.OpIs, "443")}}},
			{ID: polA, Name: "no-ssh-from-c", Precedence: 10, Action: model.ActionBlock, Silent: true, Match: model.Expr{And: []model.Expr{
				cond(model.SelTunnel, model.OpIs, "site-c"), cond(model.SelDstPort, model.OpIs, "22")}}},
			{ID: polC, Name: "staff", Precedence: 30, Action: model.ActionAllow, Match: model.Expr{And: []model.Expr{
				cond(model.SelUserEmail, model.OpMatches, ".*@example.com"), cond(model.SelVNet, model.OpIs, "vnet-b")}}},
		},
		PolicyDefault: model.ActionBlock,
	}
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.10")
	for _, tc := range []struct {
		name   string
		in     model.FlowTestInput
		action string
		policy uuid.UUID // uuid.Nil: the default
		silent bool
	}{
		{"site ssh blocked by the first rule", model.FlowTestInput{VNetID: vnetAID, TunnelID: tunCID, Src: src, Dst: dst, Protocol: "tcp", Port: 22},
			model.ActionBlock, polA, true},
		{"site https passes the first rule, allowed by the second", model.FlowTestInput{VNetID: vnetAID, TunnelID: tunCID, Src: src, Dst: dst, Protocol: "tcp", Port: 443},
			model.ActionAllow, polB, false},
		{"a device's ssh is not the site's", model.FlowTestInput{VNetID: vnetAID, DeviceID: devID, Src: src, Dst: dst, Protocol: "tcp", Port: 22},
			model.ActionBlock, uuid.Nil, false},
		{"udp 53 matches no rule", model.FlowTestInput{VNetID: vnetAID, Src: src, Dst: dst, Protocol: "udp", Port: 53},
			model.ActionBlock, uuid.Nil, false},
		{"a staff user in vnet-b", model.FlowTestInput{VNetID: vnetB, DeviceID: devID, User: "ana@example.com", Src: src, Dst: dst, Protocol: "icmp"},
			model.ActionAllow, polC, false},
		{"a staff user in vnet-a", model.FlowTestInput{VNetID: vnetAID, DeviceID: devID, User: "ana@example.com", Src: src, Dst: dst, Protocol: "icmp"},
			model.ActionBlock, uuid.Nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := judgeFlow(s, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := uuid.Nil
			if v.PolicyID != nil {
				got = *v.PolicyID
			}
			if v.Action != tc.action || got != tc.policy || v.Silent != tc.silent || v.Rules != 3 || v.Rev != 7 {
				t.Fatalf("verdict = %+v (policy %s), want %s by %s (silent %v)", v, got, tc.action, tc.policy, tc.silent)
			}
		})
	}
	s.PolicyDefault = model.ActionAllow
	if v, err := judgeFlow(s, model.FlowTestInput{VNetID: vnetAID, Src: src, Dst: dst, Protocol: "udp", Port: 53}); err != nil || v.Action != model.ActionAllow || v.PolicyID != nil {
		t.Fatalf("default allow: %+v, %v", v, err)
	}
	if _, err := judgeFlow(s, model.FlowTestInput{VNetID: uuid.New(), Src: src, Dst: dst, Protocol: "udp"}); err == nil {
		t.Fatal("an unknown vnet was judged")
	}
}

// TestJudgeFlowIdentity checks that the flow test judges user.group and
// posture rules on the groups and posture it is given.
func TestJudgeFlowIdentity(t *testing.T) {
	s := registry.Snapshot{Rev: 3,
		VNets: []model.VNet{{ID: vnetAID, Name: "vnet-a"}},
		Policies: []model.Policy{
			{ID: polA, Name: "eng-patched", Precedence: 10, Action: model.ActionAllow, Match: model.Expr{And: []model.Expr{
				cond(model.SelUserGroup, model.OpIs, "eng"), cond(model.SelPostureKernel, model.OpGe, "6.1"),
				cond(model.SelPostureDiskEncrypted, model.OpIs, "true")}}},
		},
		PolicyDefault: model.ActionBlock,
	}
	src, dst := netip.MustParseAddr("100.96.0.7"), netip.MustParseAddr("192.0.2.10")
	good := &model.Posture{Kernel: "6.1.0-18-amd64", DiskEncrypted: true}
	for _, tc := range []struct {
		name   string
		groups []string
		p      *model.Posture
		want   string
	}{
		{"eng, patched, encrypted", []string{"staff", "eng"}, good, model.ActionAllow},
		{"not in eng", []string{"sales"}, good, model.ActionBlock},
		{"old kernel", []string{"eng"}, &model.Posture{Kernel: "5.10.0-26-amd64", DiskEncrypted: true}, model.ActionBlock},
		{"no posture", []string{"eng"}, nil, model.ActionBlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := judgeFlow(s, model.FlowTestInput{VNetID: vnetAID, DeviceID: devID, User: "ana@example.com", Groups: tc.groups,
				Posture: tc.p, Src: src, Dst: dst, Protocol: "tcp", Port: 443})
			if err != nil || v.Action != tc.want {
				t.Fatalf("verdict = %+v, %v; want %s", v, err, tc.want)
			}
		})
	}
}
