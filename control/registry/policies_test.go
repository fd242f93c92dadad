package registry

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

func leaf(sel, op string, vals ...string) model.Expr {
	return model.Expr{Selector: sel, Operator: op, Values: vals}
}

func names(ps []model.Policy) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Name)
	}
	return strings.Join(s, ",")
}

func TestPolicyCRUD(t *testing.T) {
	r := newRegistry(t)
	must(r.CreateVNet(ctx, model.NewVNet{Name: "vnet-a"}))(t)
	if _, _, err := r.CreateTunnel(ctx, model.NewTunnel{Name: "site-c"}); err != nil {
		t.Fatal(err)
	}

	a := must(r.CreatePolicy(ctx, model.NewPolicy{Name: "a", Action: model.ActionAllow, Match: leaf(model.SelVNet, model.OpIs, "vnet-a")}))(t)
	b := must(r.CreatePolicy(ctx, model.NewPolicy{Name: "b", Action: model.ActionBlock, Match: leaf(model.SelTunnel, model.OpIn, "site-c")}))(t)
	if a.Precedence != 10 || b.Precedence != 20 {
		t.Fatalf("precedences %d, %d; want 10, 20", a.Precedence, b.Precedence)
	}
	vn := must(r.GetVNet(ctx, "vnet-a"))(t)
	if a.Match.Values[0] != vn.ID.String() {
		t.Fatalf("vnet stored as %q, want its id %s", a.Match.Values[0], vn.ID)
	}

	ten := 10
	if _, err := r.CreatePolicy(ctx, model.NewPolicy{Name: "c", Precedence: &ten, Action: model.ActionAllow, Match: leaf(model.SelProtocol, model.OpIs, "tcp")}); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("a taken precedence: %v", err)
	}
	if _, err := r.CreatePolicy(ctx, model.NewPolicy{Name: "a", Action: model.ActionAllow, Match: leaf(model.SelProtocol, model.OpIs, "tcp")}); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("a taken name: %v", err)
	}
	c := must(r.CreatePolicy(ctx, model.NewPolicy{Name: "c", Action: model.ActionAllow, Match: leaf(model.SelProtocol, model.OpIs, "udp")}))(t)

	moved := must(r.MovePolicy(ctx, "c", model.PolicyMove{Before: "a"}))(t)
	if names(moved) != "c,a,b" || moved[0].Precedence != 10 || moved[2].Precedence != 30 {
		t.Fatalf("after move before a: %+v", moved)
	}
	moved = must(r.MovePolicy(ctx, c.ID.String(), model.PolicyMove{After: "b"}))(t)
	if names(moved) != "a,b,c" {
		t.Fatalf("after move after b: %s", names(moved))
	}
	five := 5
	moved = must(r.MovePolicy(ctx, "b", model.PolicyMove{Precedence: &five}))(t)
	if names(moved) != "b,a,c" {
		t.Fatalf("after move to 5: %s", names(moved))
	}

	up := must(r.UpdatePolicy(ctx, "a", model.PolicyPatch{Action: ptrTo(model.ActionBlock), Silent: ptrTo(true)}))(t)
	if up.Action != model.ActionBlock || !up.Silent || up.Name != "a" {
		t.Fatalf("updated = %+v", up)
	}
	must(r.DeletePolicy(ctx, "b"))(t)
	snap := must(r.Snapshot(ctx))(t)
	if names(snap.Policies) != "a,c" || snap.PolicyDefault != model.ActionAllow {
		t.Fatalf("snapshot policies %s, default %q", names(snap.Policies), snap.PolicyDefault)
	}
	must(r.SetPolicyDefault(ctx, model.PolicyDefault{Action: model.ActionBlock}))(t)
	if d := must(r.PolicyDefault(ctx))(t); d.Action != model.ActionBlock {
		t.Fatalf("default = %+v", d)
	}
}

func TestBadPolicyChangesNothing(t *testing.T) {
	r := newRegistry(t)
	good := must(r.CreatePolicy(ctx, model.NewPolicy{Name: "good", Action: model.ActionAllow, Match: leaf(model.SelDstPort, model.OpIs, "22")}))(t)
	rev := must(r.Rev(ctx))(t)
	for _, tc := range []struct {
		name  string
		match model.Expr
		want  string
	}{
		{"unknown selector", leaf("dst_mac", model.OpIs, "x"), "unknown selector"},
		{"unknown operator", leaf(model.SelDstIP, "like", "x"), "unknown operator"},
		{"malformed CIDR", leaf(model.SelDstIP, model.OpIn, "10.1.2.3/33"), "not a valid CIDR"},
		{"host bits", leaf(model.SelSrcIP, model.OpIs, "10.1.2.3/16"), "10.1.0.0/16"},
		{"invalid regex", leaf(model.SelUserEmail, model.OpMatches, "(a"), "invalid regular expression"},
		{"port out of range", leaf(model.SelDstPort, model.OpIn, "22", "65536"), "out of range"},
		{"empty port range", leaf(model.SelDstPort, model.OpIs, "90-80"), "empty"},
		{"protocol", leaf(model.SelProtocol, model.OpIs, "sctp"), "not tcp, udp or icmp"},
		{"is with two values", leaf(model.SelDstIP, model.OpIs, "192.0.2.1", "192.0.2.2"), "one value"},
		{"regex on an address", leaf(model.SelDstIP, model.OpMatches, "10.*"), "does not support matches"},
		{"unknown vnet", leaf(model.SelVNet, model.OpIs, "nope"), "not found"},
		{"nothing", model.Expr{}, "no condition"},
		{"empty group", model.Expr{And: []model.Expr{}}, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.CreatePolicy(ctx, model.NewPolicy{Name: "bad", Action: model.ActionBlock, Match: tc.match})
			if !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v; want an invalid-input error saying %q", err, tc.want)
			}
			_, err = r.UpdatePolicy(ctx, "good", model.PolicyPatch{Match: &tc.match})
			if !errors.Is(err, model.ErrInvalid) {
				t.Fatalf("update: %v", err)
			}
		})
	}
	if _, err := r.CreatePolicy(ctx, model.NewPolicy{Name: "bad", Action: "deny", Match: leaf(model.SelDstPort, model.OpIs, "22")}); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("action deny: %v", err)
	}
	if got := must(r.Rev(ctx))(t); got != rev {
		t.Fatalf("the store changed: revision %d, was %d", got, rev)
	}
	if p := must(r.GetPolicy(ctx, "good"))(t); p.Match.String() != good.Match.String() {
		t.Fatalf("good policy changed: %s", p.Match)
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestDeleteRefusedWhilePoliciesNameIt(t *testing.T) {
	r := newRegistry(t)
	must(r.CreateVNet(ctx, model.NewVNet{Name: "vnet-a"}))(t)
	for _, name := range []string{"site-c", "site-d"} {
		if _, _, err := r.CreateTunnel(ctx, model.NewTunnel{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	// Nested in a group, among other values: still a use.
	must(r.CreatePolicy(ctx, model.NewPolicy{Name: "no-c", Action: model.ActionBlock, Match: model.Expr{And: []model.Expr{
		leaf(model.SelProtocol, model.OpIs, "tcp"),
		{Or: []model.Expr{leaf(model.SelTunnel, model.OpIn, "site-d", "site-c"), leaf(model.SelVNet, model.OpIs, "vnet-a")}},
	}}}))(t)
	// A regular expression over names names nothing in particular.
	must(r.CreatePolicy(ctx, model.NewPolicy{Name: "re", Action: model.ActionAllow, Match: leaf(model.SelTunnel, model.OpMatches, "site-.*")}))(t)

	_, err := r.DeleteTunnel(ctx, "site-c", false)
	if !errors.Is(err, model.ErrConflict) || !strings.Contains(err.Error(), "policies no-c;") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("deleting a tunnel a policy names: %v", err)
	}
	if _, err := r.DeleteVNet(ctx, "vnet-a", false); !errors.Is(err, model.ErrConflict) || !strings.Contains(err.Error(), "no-c") {
		t.Fatalf("deleting a vnet a policy names: %v", err)
	}
	must(r.GetTunnel(ctx, "site-c"))(t) // nothing changed

	must(r.DeletePolicy(ctx, "no-c"))(t)
	if _, err := r.DeleteTunnel(ctx, "site-d", false); err != nil {
		t.Fatalf("deleting a tunnel only a regular expression matches: %v", err)
	}
	must(r.CreatePolicy(ctx, model.NewPolicy{Name: "no-c2", Action: model.ActionBlock, Match: leaf(model.SelTunnel, model.OpIs, "site-c")}))(t)
	if _, err := r.DeleteTunnel(ctx, "site-c", true); err != nil {
		t.Fatalf("--force: %v", err)
	}
}

// TestPrecedenceBounds: a precedence outside 0..MaxPrecedence is refused
// everywhere it can be set, and adding after a policy at the top of the
// range renumbers instead of overflowing (MaxInt64 once broke every later add).
func TestPrecedenceBounds(t *testing.T) {
	r := newRegistry(t)
	rule := func(name string, prec *int) model.NewPolicy {
		return model.NewPolicy{Name: name, Precedence: prec, Action: model.ActionAllow, Match: leaf(model.SelProtocol, model.OpIs, "tcp")}
	}
	for _, bad := range []int{math.MaxInt64, model.MaxPrecedence + 1, -1, math.MinInt64} {
		_, err := r.CreatePolicy(ctx, rule("bad", ptrTo(bad)))
		wantKind(t, err, model.ErrInvalid, "out of range")
	}
	must(r.CreatePolicy(ctx, rule("first", nil)))(t)
	top := must(r.CreatePolicy(ctx, rule("top", ptrTo(model.MaxPrecedence))))(t)
	for _, bad := range []int{-5, math.MaxInt64} {
		_, err := r.UpdatePolicy(ctx, "top", model.PolicyPatch{Precedence: ptrTo(bad)})
		wantKind(t, err, model.ErrInvalid, "out of range")
		_, err = r.MovePolicy(ctx, "top", model.PolicyMove{Precedence: ptrTo(bad)})
		wantKind(t, err, model.ErrInvalid, "out of range")
	}
	for _, name := range []string{"next", "after-next"} {
		p, err := r.CreatePolicy(ctx, rule(name, nil))
		if err != nil {
			t.Fatalf("adding %s after a policy at precedence %d: %v", name, top.Precedence, err)
		}
		if p.Precedence < model.MinPrecedence || p.Precedence > model.MaxPrecedence {
			t.Fatalf("%s got precedence %d, outside the range", name, p.Precedence)
		}
	}
	all := must(r.ListPolicies(ctx))(t)
	if names(all) != "first,top,next,after-next" {
		t.Fatalf("order after renumbering: %s", names(all))
	}
	for i, p := range all {
		if i > 0 && p.Precedence <= all[i-1].Precedence {
			t.Fatalf("precedences not increasing: %+v", all)
		}
	}
}
