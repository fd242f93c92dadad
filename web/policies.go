package web

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/control/model"
)

func init() {
	pageSets = append(pageSets, func(s *Server) {
		s.page("GET /policies", s.policiesPage)
		s.page("POST /policies", s.addPolicy)
		s.page("POST /policies/default", s.setPolicyDefault)
		s.page("POST /policies/test", s.testFlow)
		s.page("POST /policies/{id}", s.editPolicy)
		s.page("POST /policies/{id}/move", s.movePolicy)
		s.page("POST /policies/{id}/delete", s.deletePolicy)
	})
}

// policyRow is one policy as the list shows it, with its neighbours for
// the move buttons and its condition as the edit form's text.
type policyRow struct {
	model.Policy
	Match      string // for reading, with names for ids
	Conditions string // for the edit form: one condition a line, or JSON
	Any        bool
	Prev, Next string // the neighbours' ids; empty at the ends
}

// policyList is the list fragment: the rules in order and the default.
type policyList struct {
	Rows    []policyRow
	Default string
}

// policyPage is the whole page: the list and the test form's choices.
type policyPage struct {
	List    policyList
	VNets   []model.VNet
	Tunnels []model.Tunnel
	Devices []model.Device
}

func (s *Server) policiesPage(q *req) error {
	ctx := q.r.Context()
	list, err := q.policyList()
	if err != nil {
		return err
	}
	p := policyPage{List: list}
	if p.VNets, err = q.api.ListVNets(ctx, model.VNetFilter{}); err != nil {
		return err
	}
	if p.Tunnels, err = q.api.ListTunnels(ctx, model.TunnelFilter{}); err != nil {
		return err
	}
	if p.Devices, err = q.api.ListDevices(ctx, false); err != nil {
		return err
	}
	return q.render("policies", "policies", "Policies", p)
}

// policyList reads the policies and the default action.
func (q *req) policyList() (policyList, error) {
	ctx := q.r.Context()
	ps, err := q.api.ListPolicies(ctx)
	if err != nil {
		return policyList{}, err
	}
	def, err := q.api.PolicyDefault(ctx)
	if err != nil {
		return policyList{}, err
	}
	names := q.api.ObjectNames(q.r.Context())
	l := policyList{Default: def.Action, Rows: make([]policyRow, len(ps))}
	for i, p := range ps {
		m := p.Match.WithNames(names)
		r := policyRow{Policy: p, Match: m.String()}
		r.Conditions, r.Any = conditionsText(m)
		if i > 0 {
			r.Prev = ps[i-1].ID.String()
		}
		if i < len(ps)-1 {
			r.Next = ps[i+1].ID.String()
		}
		l.Rows[i] = r
	}
	return l, nil
}

// showList answers a change with the list fragment.
func (q *req) showList() error {
	l, err := q.policyList()
	if err != nil {
		return err
	}
	return q.fragment("policies", "policy-list", policyPage{List: l})
}

func (s *Server) addPolicy(q *req) error {
	match, err := parseConditions(q.r.FormValue("conditions"), q.r.FormValue("any") != "")
	if err != nil {
		return err
	}
	np := model.NewPolicy{Name: strings.TrimSpace(q.r.FormValue("name")), Action: q.r.FormValue("action"),
		Silent: q.r.FormValue("silent") != "", Match: match, Comment: q.r.FormValue("comment")}
	if v := strings.TrimSpace(q.r.FormValue("precedence")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return model.Errorf(model.KindInvalid, "precedence %q is not a number", v)
		}
		np.Precedence = &n
	}
	if _, err := q.api.CreatePolicy(q.r.Context(), np); err != nil {
		return err
	}
	return q.showList()
}

func (s *Server) editPolicy(q *req) error {
	match, err := parseConditions(q.r.FormValue("conditions"), q.r.FormValue("any") != "")
	if err != nil {
		return err
	}
	name, action, comment, silent := strings.TrimSpace(q.r.FormValue("name")), q.r.FormValue("action"),
		q.r.FormValue("comment"), q.r.FormValue("silent") != ""
	p := model.PolicyPatch{Name: &name, Action: &action, Comment: &comment, Silent: &silent, Match: &match}
	if _, err := q.api.UpdatePolicy(q.r.Context(), q.r.PathValue("id"), p); err != nil {
		return err
	}
	return q.showList()
}

// movePolicy moves a policy before or after a neighbour (the up and down
// buttons) or to a precedence.
func (s *Server) movePolicy(q *req) error {
	var m model.PolicyMove
	switch {
	case q.r.FormValue("before") != "":
		m.Before = q.r.FormValue("before")
	case q.r.FormValue("after") != "":
		m.After = q.r.FormValue("after")
	default:
		v := strings.TrimSpace(q.r.FormValue("precedence"))
		n, err := strconv.Atoi(v)
		if err != nil {
			return model.Errorf(model.KindInvalid, "precedence %q is not a number", v)
		}
		m.Precedence = &n
	}
	if _, err := q.api.MovePolicy(q.r.Context(), q.r.PathValue("id"), m); err != nil {
		return err
	}
	return q.showList()
}

func (s *Server) deletePolicy(q *req) error {
	if _, err := q.api.DeletePolicy(q.r.Context(), q.r.PathValue("id")); err != nil {
		return err
	}
	return q.showList()
}

func (s *Server) setPolicyDefault(q *req) error {
	if _, err := q.api.SetPolicyDefault(q.r.Context(), model.PolicyDefault{Action: q.r.FormValue("action")}); err != nil {
		return err
	}
	return q.showList()
}

// testFlow answers the "test a flow" form with the edge's verdict.
func (s *Server) testFlow(q *req) error {
	f := q.r.FormValue
	t := model.FlowTest{VNet: f("vnet"), User: strings.TrimSpace(f("user")), Protocol: f("protocol")}
	for _, g := range strings.Split(f("groups"), ",") {
		if g = strings.TrimSpace(g); g != "" {
			t.Groups = append(t.Groups, g)
		}
	}
	var posture []string
	for _, kv := range strings.Split(f("posture"), ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			posture = append(posture, kv)
		}
	}
	var err error
	if t.Posture, err = model.ParsePosture(posture); err != nil {
		return err
	}
	switch src := f("source"); {
	case strings.HasPrefix(src, "device:"):
		t.Device = strings.TrimPrefix(src, "device:")
	case strings.HasPrefix(src, "tunnel:"):
		t.Tunnel = strings.TrimPrefix(src, "tunnel:")
	}
	if t.Src, err = formAddr("source IP", f("src")); err != nil {
		return err
	}
	if t.Dst, err = formAddr("destination IP", f("dst")); err != nil {
		return err
	}
	if v := strings.TrimSpace(f("port")); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return model.Errorf(model.KindInvalid, "port %q is not a port (0-65535)", v)
		}
		t.Port = uint16(n)
	}
	v, err := q.api.TestFlow(q.r.Context(), t)
	if err != nil {
		return err
	}
	match := ""
	if v.Policy != nil {
		match = v.Policy.Match.WithNames(q.api.ObjectNames(q.r.Context())).String()
	}
	return q.fragment("policies", "verdict", struct {
		model.FlowVerdict
		Test  model.FlowTest
		Match string
	}{v, t, match})
}

func formAddr(what, v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(v))
	if err != nil {
		return netip.Addr{}, model.Errorf(model.KindInvalid, "%s %q is not an IP address", what, v)
	}
	return a, nil
}

// parseConditions reads the form's condition text: a JSON condition, or one
// "SELECTOR OPERATOR VALUE" a line, all of which must hold (any: one).
func parseConditions(text string, any bool) (model.Expr, error) {
	text = strings.TrimSpace(text)
	if strings.HasPrefix(text, "{") {
		var e model.Expr
		if err := json.Unmarshal([]byte(text), &e); err != nil {
			return model.Expr{}, model.Errorf(model.KindInvalid, "the condition is not JSON: %v", err)
		}
		return e, nil
	}
	var conds []model.Expr
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		e, err := model.ParseCondition(line)
		if err != nil {
			return model.Expr{}, err
		}
		conds = append(conds, e)
	}
	switch {
	case len(conds) == 0:
		return model.Expr{}, model.Errorf(model.KindInvalid, "a policy needs a condition, such as \"dst_port is 22\"")
	case len(conds) == 1:
		return conds[0], nil
	case any:
		return model.Expr{Or: conds}, nil
	}
	return model.Expr{And: conds}, nil
}

// conditionsText writes e as the form takes it: one leaf a line when e is
// a leaf or a flat group of leaves, JSON otherwise.
func conditionsText(e model.Expr) (string, bool) {
	leaf := func(e model.Expr) bool { return e.And == nil && e.Or == nil }
	if leaf(e) {
		return e.String(), false
	}
	group, any := e.And, false
	if e.Or != nil {
		group, any = e.Or, true
	}
	lines := make([]string, len(group))
	for i, k := range group {
		if !leaf(k) || slicesContainComma(k.Values) {
			b, _ := json.Marshal(e)
			return string(b), false
		}
		lines[i] = k.String()
	}
	return strings.Join(lines, "\n"), any
}

// slicesContainComma reports a value that would not survive a round trip
// through "a,b" text.
func slicesContainComma(vs []string) bool {
	for _, v := range vs {
		if strings.ContainsAny(v, ", ") {
			return true
		}
	}
	return false
}
