package api

import (
	"net/http"
	"strconv"

	"github.com/switchyard/switchyard/control/model"
)

func (s *Server) policyRoutes() {
	for pattern, fn := range map[string]func(*http.Request) (any, error){
		"GET /v1/policies":             func(r *http.Request) (any, error) { return nonNil(s.reg.ListPolicies(r.Context())) },
		"POST /v1/policies":            s.createPolicy,
		"GET /v1/policies/{ref}":       func(r *http.Request) (any, error) { return s.reg.GetPolicy(r.Context(), r.PathValue("ref")) },
		"PATCH /v1/policies/{ref}":     s.updatePolicy,
		"DELETE /v1/policies/{ref}":    func(r *http.Request) (any, error) { return s.reg.DeletePolicy(r.Context(), r.PathValue("ref")) },
		"POST /v1/policies/{ref}/move": s.movePolicy,
		"POST /v1/policies/test":       s.testFlow,
		"GET /v1/policy-default":       func(r *http.Request) (any, error) { return s.reg.PolicyDefault(r.Context()) },
		"PUT /v1/policy-default":       s.setPolicyDefault,
	} {
		s.mux.HandleFunc(pattern, s.handle(fn))
	}
	s.mux.HandleFunc("GET /v1/flows", s.authorized(s.flows))
}

func (s *Server) createPolicy(r *http.Request) (any, error) {
	var req model.NewPolicy
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return s.reg.CreatePolicy(r.Context(), req)
}

func (s *Server) updatePolicy(r *http.Request) (any, error) {
	var p model.PolicyPatch
	if err := decode(r, &p); err != nil {
		return nil, err
	}
	return s.reg.UpdatePolicy(r.Context(), r.PathValue("ref"), p)
}

func (s *Server) movePolicy(r *http.Request) (any, error) {
	var m model.PolicyMove
	if err := decode(r, &m); err != nil {
		return nil, err
	}
	return s.reg.MovePolicy(r.Context(), r.PathValue("ref"), m)
}

func (s *Server) setPolicyDefault(r *http.Request) (any, error) {
	var d model.PolicyDefault
	if err := decode(r, &d); err != nil {
		return nil, err
	}
	return s.reg.SetPolicyDefault(r.Context(), d)
}

// flows streams flow log records as newline-delimited JSON: the last n
// (default 100) that match the filters, then, with follow=true, new ones
// until the client goes away.
func (s *Server) flows(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := model.FlowFilter{Proto: q.Get("proto"), Action: q.Get("action"), Policy: q.Get("policy"),
		User: q.Get("user"), VNet: q.Get("vnet"), Tunnel: q.Get("tunnel"), Event: q.Get("event")}
	if a := q.Get("addr"); a != "" {
		addr, err := model.ParseAddr(a)
		if err != nil {
			writeError(w, err)
			return
		}
		f.Addr = addr
	}
	if p := q.Get("port"); p != "" {
		lo, hi, err := model.ParsePortRange(p)
		if err != nil || lo != hi {
			writeError(w, model.Errorf(model.KindInvalid, "query parameter port=%q is not a port", p))
			return
		}
		f.Port = lo
	}
	n := 100
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			writeError(w, model.Errorf(model.KindInvalid, "query parameter n=%q is not a count", v))
			return
		}
	}
	follow, err := queryBool(r, "follow")
	if err != nil {
		writeError(w, err)
		return
	}
	if s.opts.FlowLog == nil {
		writeError(w, model.Errorf(model.KindNotFound, "this server keeps no flow log"))
		return
	}
	send, end := s.streamNDJSON(w)
	defer end()
	err = s.opts.FlowLog(r.Context(), f, n, follow != nil && *follow, func(rec model.FlowRecord) error { return send(rec) })
	if err != nil && r.Context().Err() == nil {
		s.log.Warn("streaming the flow log", "err", err)
	}
}
