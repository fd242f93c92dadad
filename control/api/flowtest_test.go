package api_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/model"
)

// TestFlowTestEndpoint checks POST /v1/policies/test: names resolved to ids
// for the edge's engine, the matching policy filled in, the default named
// by no policy, and bad requests refused before the engine runs.
func TestFlowTestEndpoint(t *testing.T) {
	var got []model.FlowTestInput
	var answer model.FlowVerdict
	_, c := newServer(t, func(o *api.Options) {
		o.TestFlow = func(_ context.Context, in model.FlowTestInput) (model.FlowVerdict, error) {
			got = append(got, in)
			return answer, nil
		}
	})
	ctx := context.Background()
	vn, err := c.CreateVNet(ctx, model.NewVNet{Name: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	tun, err := c.CreateTunnel(ctx, "site-c")
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.CreatePolicy(ctx, model.NewPolicy{Name: "no-ssh", Action: model.ActionBlock,
		Match: model.Expr{Selector: model.SelDstPort, Operator: model.OpIs, Values: []string{"22"}}})
	if err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.10")

	answer = model.FlowVerdict{Action: model.ActionBlock, PolicyID: &p.ID, Rules: 1}
	v, err := c.TestFlow(ctx, model.FlowTest{VNet: "lab", Tunnel: "site-c", Src: src, Dst: dst, Protocol: "tcp", Port: 22})
	if err != nil {
		t.Fatal(err)
	}
	if v.Action != model.ActionBlock || v.Policy == nil || v.Policy.Name != "no-ssh" || v.VNetName != "lab" {
		t.Fatalf("verdict = %+v, want block by no-ssh in lab", v)
	}
	want := model.FlowTestInput{VNetID: vn.ID, TunnelID: tun.Tunnel.ID, Src: src, Dst: dst, Protocol: "tcp", Port: 22}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("the engine got %+v, want %+v", got, want)
	}

	answer = model.FlowVerdict{Action: model.ActionAllow}
	v, err = c.TestFlow(ctx, model.FlowTest{User: "ana@example.com", Src: src, Dst: dst, Protocol: "icmp"})
	if err != nil || v.Action != model.ActionAllow || v.Policy != nil || v.VNetName != "default" {
		t.Fatalf("default verdict = %+v, %v", v, err)
	}
	if g := got[len(got)-1]; g.User != "ana@example.com" || g.TunnelID != uuid.Nil || g.VNetID == vn.ID {
		t.Fatalf("the engine got %+v for a user in the default vnet", g)
	}

	// Groups and posture, as given, reach the engine.
	posture := &model.Posture{Kernel: "6.1.0-18-amd64", DiskEncrypted: true}
	if _, err := c.TestFlow(ctx, model.FlowTest{User: "ana@example.com", Groups: []string{"eng"}, Posture: posture,
		Src: src, Dst: dst, Protocol: "tcp", Port: 443}); err != nil {
		t.Fatal(err)
	}
	if g := got[len(got)-1]; !reflect.DeepEqual(g.Groups, []string{"eng"}) || g.Posture == nil || *g.Posture != *posture {
		t.Fatalf("the engine got %+v, want the test's groups and posture", g)
	}

	n := len(got)
	for _, tc := range []struct {
		name string
		t    model.FlowTest
		want error
	}{
		{"unknown tunnel", model.FlowTest{Tunnel: "nope", Src: src, Dst: dst, Protocol: "tcp"}, model.ErrNotFound},
		{"unknown device", model.FlowTest{Device: "nope", Src: src, Dst: dst, Protocol: "tcp"}, model.ErrNotFound},
		{"unknown vnet", model.FlowTest{VNet: "nope", Src: src, Dst: dst, Protocol: "tcp"}, model.ErrNotFound},
		{"both device and tunnel", model.FlowTest{Device: "d", Tunnel: "site-c", Src: src, Dst: dst, Protocol: "tcp"}, model.ErrInvalid},
		{"no destination", model.FlowTest{Src: src, Protocol: "tcp"}, model.ErrInvalid},
		{"mixed families", model.FlowTest{Src: src, Dst: netip.MustParseAddr("2001:db8::1"), Protocol: "tcp"}, model.ErrInvalid},
		{"bad protocol", model.FlowTest{Src: src, Dst: dst, Protocol: "sctp"}, model.ErrInvalid},
	} {
		if _, err := c.TestFlow(ctx, tc.t); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if len(got) != n {
		t.Errorf("the engine ran for %d refused requests", len(got)-n)
	}
}

func TestFlowTestWithoutEngine(t *testing.T) {
	_, c := newServer(t)
	_, err := c.TestFlow(context.Background(), model.FlowTest{Src: netip.MustParseAddr("198.51.100.7"),
		Dst: netip.MustParseAddr("192.0.2.10"), Protocol: "udp", Port: 53})
	if !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("a flow test without an engine: %v", err)
	}
}
