package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

const (
	collPolicies     = "policies"
	keyPolicyDefault = "policy_default"
	// precedenceStep spaces the precedences that add and move assign, leaving
	// room to place a rule between two others.
	precedenceStep = 10
	// maxPolicies bounds the rule list.
	maxPolicies = 10000
)

// ListPolicies returns the policies in evaluation order.
func (r *Registry) ListPolicies(ctx context.Context) ([]model.Policy, error) {
	var out []model.Policy
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = orderedPolicies(tx)
		return err
	})
	return out, err
}

// GetPolicy returns the policy named by ref (name or id).
func (r *Registry) GetPolicy(ctx context.Context, ref string) (model.Policy, error) {
	var p model.Policy
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = resolvePolicy(tx, ref)
		return err
	})
	return p, err
}

// CreatePolicy validates and adds a policy; without a precedence it goes
// after every existing one.
func (r *Registry) CreatePolicy(ctx context.Context, req model.NewPolicy) (model.Policy, error) {
	p := model.Policy{ID: uuid.New(), Name: req.Name, Action: req.Action, Silent: req.Silent, Match: req.Match, Comment: req.Comment}
	if err := model.ValidatePolicy(p); err != nil {
		return model.Policy{}, err
	}
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		all, err := orderedPolicies(tx)
		if err != nil {
			return err
		}
		if len(all) >= maxPolicies {
			return model.Errorf(model.KindConflict, "there are already %d policies, the limit", maxPolicies)
		}
		if i := slices.IndexFunc(all, func(o model.Policy) bool { return o.Name == p.Name }); i >= 0 {
			return model.Errorf(model.KindConflict, "a policy named %q already exists (id %s)", p.Name, all[i].ID)
		}
		switch {
		case req.Precedence != nil:
			p.Precedence = *req.Precedence
		case len(all) > 0 && all[len(all)-1].Precedence > model.MaxPrecedence-precedenceStep:
			// No room after the last: renumber in steps, keeping the order.
			if err := renumber(tx, all, r.stamp()); err != nil {
				return err
			}
			p.Precedence = (len(all) + 1) * precedenceStep
		case len(all) > 0:
			p.Precedence = all[len(all)-1].Precedence + precedenceStep
		default:
			p.Precedence = precedenceStep
		}
		if err := checkPrecedence(all, p); err != nil {
			return err
		}
		if p.Match, err = canonicalExpr(tx, p.Match); err != nil {
			return model.Errorf(model.KindInvalid, "policy %s: %s", p.Name, err.Error())
		}
		p.CreatedAt = r.stamp()
		p.UpdatedAt = p.CreatedAt
		return putJSON(tx, collPolicies, p.ID, p)
	})
	if err != nil {
		return model.Policy{}, err
	}
	return p, nil
}

// UpdatePolicy changes the fields of the policy named by ref that patch sets.
func (r *Registry) UpdatePolicy(ctx context.Context, ref string, patch model.PolicyPatch) (model.Policy, error) {
	var p model.Policy
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if p, err = resolvePolicy(tx, ref); err != nil {
			return err
		}
		all, err := orderedPolicies(tx)
		if err != nil {
			return err
		}
		if patch.Name != nil {
			if i := slices.IndexFunc(all, func(o model.Policy) bool { return o.Name == *patch.Name && o.ID != p.ID }); i >= 0 {
				return model.Errorf(model.KindConflict, "a policy named %q already exists (id %s)", *patch.Name, all[i].ID)
			}
			p.Name = *patch.Name
		}
		if patch.Precedence != nil {
			p.Precedence = *patch.Precedence
		}
		if patch.Action != nil {
			p.Action = *patch.Action
		}
		if patch.Silent != nil {
			p.Silent = *patch.Silent
		}
		if patch.Match != nil {
			p.Match = *patch.Match
		}
		if patch.Comment != nil {
			p.Comment = *patch.Comment
		}
		if err := model.ValidatePolicy(p); err != nil {
			return err
		}
		if err := checkPrecedence(all, p); err != nil {
			return err
		}
		if p.Match, err = canonicalExpr(tx, p.Match); err != nil {
			return model.Errorf(model.KindInvalid, "policy %s: %s", p.Name, err.Error())
		}
		p.UpdatedAt = r.stamp()
		return putJSON(tx, collPolicies, p.ID, p)
	})
	return p, err
}

// DeletePolicy deletes the policy named by ref.
func (r *Registry) DeletePolicy(ctx context.Context, ref string) (model.Policy, error) {
	var p model.Policy
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if p, err = resolvePolicy(tx, ref); err != nil {
			return err
		}
		return tx.Delete(collPolicies, p.ID.String())
	})
	return p, err
}

// MovePolicy moves the policy named by ref: to a free precedence, or before
// or after another policy, in which case every policy is renumbered in steps
// of ten. It returns the policies in their new order.
func (r *Registry) MovePolicy(ctx context.Context, ref string, m model.PolicyMove) ([]model.Policy, error) {
	set := 0
	for _, b := range []bool{m.Precedence != nil, m.Before != "", m.After != ""} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, model.Errorf(model.KindInvalid, "move a policy with exactly one of precedence, before or after")
	}
	var out []model.Policy
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		p, err := resolvePolicy(tx, ref)
		if err != nil {
			return err
		}
		all, err := orderedPolicies(tx)
		if err != nil {
			return err
		}
		now := r.stamp()
		if m.Precedence != nil {
			p.Precedence = *m.Precedence
			if err := checkPrecedence(all, p); err != nil {
				return err
			}
			p.UpdatedAt = now
			if err := putJSON(tx, collPolicies, p.ID, p); err != nil {
				return err
			}
			out, err = orderedPolicies(tx)
			return err
		}
		anchorRef := m.Before + m.After
		anchor, err := resolvePolicy(tx, anchorRef)
		if err != nil {
			return err
		}
		if anchor.ID == p.ID {
			return model.Errorf(model.KindInvalid, "cannot move policy %s relative to itself", p.Name)
		}
		all = slices.DeleteFunc(all, func(o model.Policy) bool { return o.ID == p.ID })
		at := slices.IndexFunc(all, func(o model.Policy) bool { return o.ID == anchor.ID })
		if m.After != "" {
			at++
		}
		all = slices.Insert(all, at, p)
		p.Precedence = -1 // renumbered and stored whatever its place
		all[at] = p
		out = all
		return renumber(tx, all, now)
	})
	return out, err
}

// renumber gives the policies, in their order, precedences in steps of ten
// and stores those that change.
func renumber(tx store.Tx, all []model.Policy, now time.Time) error {
	for i := range all {
		if all[i].Precedence != (i+1)*precedenceStep {
			all[i].Precedence = (i + 1) * precedenceStep
			all[i].UpdatedAt = now
			if err := putJSON(tx, collPolicies, all[i].ID, all[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// PolicyDefault returns the action for flows no policy matches (allow until set).
func (r *Registry) PolicyDefault(ctx context.Context) (model.PolicyDefault, error) {
	var d model.PolicyDefault
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		d, err = policyDefault(tx)
		return err
	})
	return d, err
}

// SetPolicyDefault sets the action for flows no policy matches.
func (r *Registry) SetPolicyDefault(ctx context.Context, d model.PolicyDefault) (model.PolicyDefault, error) {
	if err := model.ValidateAction(d.Action); err != nil {
		return d, err
	}
	buf, err := json.Marshal(d)
	if err != nil {
		return d, fmt.Errorf("encode default policy action: %w", err)
	}
	_, err = r.st.Update(ctx, func(tx store.Tx) error { return tx.Put(collSettings, keyPolicyDefault, buf) })
	return d, err
}

func policyDefault(tx store.Tx) (model.PolicyDefault, error) {
	buf, err := tx.Get(collSettings, keyPolicyDefault)
	if errors.Is(err, store.ErrNotFound) {
		return model.PolicyDefault{Action: model.ActionAllow}, nil
	}
	if err != nil {
		return model.PolicyDefault{}, err
	}
	var d model.PolicyDefault
	if err := json.Unmarshal(buf, &d); err != nil {
		return d, fmt.Errorf("decode default policy action: %w", err)
	}
	return d, nil
}

// orderedPolicies loads every policy in evaluation order.
func orderedPolicies(tx store.Tx) ([]model.Policy, error) {
	all, err := loadAll[model.Policy](tx, collPolicies)
	slices.SortStableFunc(all, func(a, b model.Policy) int { return cmp.Compare(a.Precedence, b.Precedence) })
	return all, err
}

// checkPrecedence refuses a precedence that another policy holds, so that
// the order is never ambiguous.
func checkPrecedence(all []model.Policy, p model.Policy) error {
	if err := model.ValidatePrecedence(p.Precedence); err != nil {
		return model.Errorf(model.KindInvalid, "policy %s: %s", p.Name, model.AsError(err).Message)
	}
	for _, o := range all {
		if o.Precedence == p.Precedence && o.ID != p.ID {
			return model.Errorf(model.KindConflict, "precedence %d is taken by policy %s; pick another or use policy move", p.Precedence, o.Name)
		}
	}
	return nil
}

func resolvePolicy(tx store.Tx, ref string) (model.Policy, error) {
	return resolve[model.Policy](tx, collPolicies, "policy", ref,
		func(p model.Policy) (uuid.UUID, string, bool) { return p.ID, p.Name, false })
}

// canonicalExpr checks that the virtual networks and tunnels a policy names
// exist and records them by id, so that renaming them keeps the rule.
func canonicalExpr(tx store.Tx, e model.Expr) (model.Expr, error) {
	for _, g := range []*[]model.Expr{&e.And, &e.Or} {
		if *g == nil {
			continue
		}
		out := make([]model.Expr, len(*g))
		for i, k := range *g {
			c, err := canonicalExpr(tx, k)
			if err != nil {
				return e, err
			}
			out[i] = c
		}
		*g = out
	}
	if e.Operator == model.OpMatches || (e.Selector != model.SelVNet && e.Selector != model.SelTunnel) {
		return e, nil
	}
	vals := make([]string, len(e.Values))
	for i, v := range e.Values {
		var id uuid.UUID
		if e.Selector == model.SelVNet {
			vn, err := resolveVNet(tx, v)
			if err != nil {
				return e, err
			}
			id = vn.ID
		} else {
			t, err := resolveTunnel(tx, v)
			if err != nil {
				return e, err
			}
			id = t.ID
		}
		vals[i] = id.String()
	}
	e.Values = vals
	return e, nil
}

// snapshotPolicies adds the policies and the default action to a snapshot.
func snapshotPolicies(tx store.Tx, s *Snapshot) error {
	var err error
	if s.Policies, err = orderedPolicies(tx); err != nil {
		return err
	}
	d, err := policyDefault(tx)
	s.PolicyDefault = d.Action
	return err
}

// policiesNaming returns the names of the policies with a condition that
// names id (a vnet or tunnel, by the selector sel), as conditions store them.
func policiesNaming(tx store.Tx, sel string, id uuid.UUID) ([]string, error) {
	all, err := orderedPolicies(tx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range all {
		if exprNames(p.Match, sel, id.String()) {
			names = append(names, p.Name)
		}
	}
	return names, nil
}

// exprNames reports whether e or a condition inside it compares sel with value.
func exprNames(e model.Expr, sel, value string) bool {
	for _, group := range [][]model.Expr{e.And, e.Or} {
		for _, k := range group {
			if exprNames(k, sel, value) {
				return true
			}
		}
	}
	return e.Selector == sel && e.Operator != model.OpMatches && slices.Contains(e.Values, value)
}

// refusePolicyUse refuses to delete what policies still name, unless force.
func refusePolicyUse(tx store.Tx, kind, sel, name string, id uuid.UUID, force bool) error {
	if force {
		return nil
	}
	names, err := policiesNaming(tx, sel, id)
	if err != nil || len(names) == 0 {
		return err
	}
	return model.Errorf(model.KindConflict, "%s %s is named by policies %s; update or delete them first, or use --force (their conditions on it then match nothing)",
		kind, name, strings.Join(names, ", "))
}
