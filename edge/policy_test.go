package edge

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// TestPolicyGeneration checks that the data plane compiles policies from the
// store, and starts a new generation (re-evaluating live flows) only when
// something rules see changes.
func TestPolicyGeneration(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	gen := func() uint64 { return l.dp.router.Policies().Gen }
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s (rules %d, generation %d)", what, l.dp.router.Policies().Len(), gen())
			}
		}
	}
	if _, err := l.reg.CreatePolicy(ctx, model.NewPolicy{Name: "ssh", Action: model.ActionBlock,
		Match: model.Expr{Selector: model.SelDstPort, Operator: model.OpIs, Values: []string{"22"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor("the policy is applied", func() bool { return l.dp.router.Policies().Len() == 1 })
	g := gen()
	if _, err := l.reg.SetSplitMode(ctx, model.SplitInclude); err != nil {
		t.Fatal(err)
	}
	storeRev, err := l.reg.Rev(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor("the split tunnel change is applied", func() bool { a := l.dp.applied.Load(); return a != nil && a.rev >= storeRev })
	if gen() != g {
		t.Fatalf("a split tunnel change started generation %d (was %d)", gen(), g)
	}
	if _, err := l.reg.SetPolicyDefault(ctx, model.PolicyDefault{Action: model.ActionBlock}); err != nil {
		t.Fatal(err)
	}
	waitFor("the default action starts a new generation", func() bool { return gen() > g })
}
