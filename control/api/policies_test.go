package api_test

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/model"
)

func TestPolicyEndpoints(t *testing.T) {
	_, c := newServer(t)
	ctx := context.Background()
	ssh := model.Expr{Selector: model.SelDstPort, Operator: model.OpIs, Values: []string{"22"}}
	a, err := c.CreatePolicy(ctx, model.NewPolicy{Name: "a", Action: model.ActionBlock, Match: ssh})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreatePolicy(ctx, model.NewPolicy{Name: "b", Action: model.ActionAllow, Match: ssh}); err != nil {
		t.Fatal(err)
	}
	bad := model.Expr{Selector: model.SelDstIP, Operator: model.OpIs, Values: []string{"10.1.2.3/33"}}
	if _, err := c.CreatePolicy(ctx, model.NewPolicy{Name: "c", Action: model.ActionBlock, Match: bad}); !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "10.1.2.3/33") {
		t.Fatalf("a malformed CIDR: %v", err)
	}
	moved, err := c.MovePolicy(ctx, "b", model.PolicyMove{Before: "a"})
	if err != nil || len(moved) != 2 || moved[0].Name != "b" {
		t.Fatalf("move = %+v, %v", moved, err)
	}
	up, err := c.UpdatePolicy(ctx, a.ID.String(), model.PolicyPatch{Comment: ptr("no ssh")})
	if err != nil || up.Comment != "no ssh" || up.Match.String() != ssh.String() {
		t.Fatalf("update = %+v, %v", up, err)
	}
	if got, err := c.GetPolicy(ctx, "a"); err != nil || got.Comment != "no ssh" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, err := c.DeletePolicy(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPolicy(ctx, "a"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if d, err := c.SetPolicyDefault(ctx, model.PolicyDefault{Action: "deny"}); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("default deny = %+v, %v; want invalid (allow or block)", d, err)
	}
	if d, err := c.SetPolicyDefault(ctx, model.PolicyDefault{Action: model.ActionBlock}); err != nil || d.Action != model.ActionBlock {
		t.Fatalf("default = %+v, %v", d, err)
	}
	if err := c.Flows(ctx, nil, func(model.FlowRecord) error { return nil }); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("flows without a flow log: %v", err)
	}
}

func TestFlowsStream(t *testing.T) {
	var got model.FlowFilter
	_, c := newServer(t, func(o *api.Options) {
		o.FlowLog = func(ctx context.Context, f model.FlowFilter, n int, follow bool, emit func(model.FlowRecord) error) error {
			got = f
			for i := range n {
				if err := emit(model.FlowRecord{Event: model.FlowStart, Src: netip.AddrPortFrom(f.Addr, uint16(i))}); err != nil {
					return err
				}
			}
			return nil
		}
	})
	var recs []model.FlowRecord
	q := url.Values{"n": {"3"}, "addr": {"192.0.2.7"}, "port": {"22"}, "user": {"alice@example.com"}}
	if err := c.Flows(context.Background(), q, func(r model.FlowRecord) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[2].Src.String() != "192.0.2.7:2" {
		t.Fatalf("records = %+v", recs)
	}
	if got.Addr.String() != "192.0.2.7" || got.Port != 22 || got.User != "alice@example.com" {
		t.Fatalf("filter = %+v", got)
	}
	for _, bad := range []url.Values{{"addr": {"nope"}}, {"port": {"70000"}}, {"n": {"-1"}}, {"follow": {"maybe"}}} {
		if err := c.Flows(context.Background(), bad, func(model.FlowRecord) error { return nil }); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("flows %v: %v, want invalid", bad, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
