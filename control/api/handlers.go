package api

import (
	"net/http"
	"net/netip"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

func (s *Server) listVNets(r *http.Request) (any, error) {
	q := r.URL.Query()
	f := model.VNetFilter{Name: q.Get("name")}
	if id := q.Get("id"); id != "" {
		u, err := uuid.Parse(id)
		if err != nil {
			return nil, model.Errorf(model.KindInvalid, "query parameter id=%q is not a UUID", id)
		}
		f.ID = &u
	}
	var err error
	if f.IsDefault, err = queryBool(r, "is_default"); err != nil {
		return nil, err
	}
	show, err := queryBool(r, "show_deleted")
	if err != nil {
		return nil, err
	}
	f.ShowDeleted = show != nil && *show
	return nonNil(s.reg.ListVNets(r.Context(), f))
}

func (s *Server) createVNet(r *http.Request) (any, error) {
	var req model.NewVNet
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return s.reg.CreateVNet(r.Context(), req)
}

func (s *Server) getVNet(r *http.Request) (any, error) {
	return s.reg.GetVNet(r.Context(), r.PathValue("ref"))
}

func (s *Server) updateVNet(r *http.Request) (any, error) {
	var p model.VNetPatch
	if err := decode(r, &p); err != nil {
		return nil, err
	}
	return s.reg.UpdateVNet(r.Context(), r.PathValue("ref"), p)
}

// DeleteResult is the response to a delete that may take routes with it.
type DeleteResult struct {
	DeletedRoutes int `json:"deleted_routes"`
}

func (s *Server) deleteVNet(r *http.Request) (any, error) {
	force, err := queryBool(r, "force")
	if err != nil {
		return nil, err
	}
	n, err := s.reg.DeleteVNet(r.Context(), r.PathValue("ref"), force != nil && *force)
	return DeleteResult{DeletedRoutes: n}, err
}

func (s *Server) listTunnels(r *http.Request) (any, error) {
	q := r.URL.Query()
	f := model.TunnelFilter{Name: q.Get("name")}
	if id := q.Get("id"); id != "" {
		u, err := uuid.Parse(id)
		if err != nil {
			return nil, model.Errorf(model.KindInvalid, "query parameter id=%q is not a UUID", id)
		}
		f.ID = &u
	}
	show, err := queryBool(r, "show_deleted")
	if err != nil {
		return nil, err
	}
	f.ShowDeleted = show != nil && *show
	tunnels, err := nonNil(s.reg.ListTunnels(r.Context(), f))
	for i := range tunnels {
		s.fillConnections(&tunnels[i])
	}
	return tunnels, err
}

// fillConnections sets a tunnel's live connections from the data plane.
func (s *Server) fillConnections(t *model.Tunnel) {
	t.Connections = []model.Connection{}
	if s.opts.Connections != nil {
		if c := s.opts.Connections()[t.ID]; c != nil {
			t.Connections = c
		}
	}
}

func (s *Server) createTunnel(r *http.Request) (any, error) {
	var req model.NewTunnel
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	tun, secret, err := s.reg.CreateTunnel(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return model.CreatedTunnel{Tunnel: tun, Token: s.tokenFor(r.Context(), tun, secret)}, nil
}

func (s *Server) getTunnel(r *http.Request) (any, error) {
	t, err := s.reg.GetTunnel(r.Context(), r.PathValue("ref"))
	s.fillConnections(&t)
	return t, err
}

func (s *Server) deleteTunnel(r *http.Request) (any, error) {
	force, err := queryBool(r, "force")
	if err != nil {
		return nil, err
	}
	if force == nil || !*force {
		t, err := s.reg.GetTunnel(r.Context(), r.PathValue("ref"))
		if err != nil {
			return nil, err
		}
		s.fillConnections(&t)
		if n := len(t.Connections); n > 0 {
			return nil, model.Errorf(model.KindConflict, "tunnel %s has %d live connection(s); stop its connectors first or use --force", t.Name, n)
		}
	}
	n, err := s.reg.DeleteTunnel(r.Context(), r.PathValue("ref"), force != nil && *force)
	return DeleteResult{DeletedRoutes: n}, err
}

func (s *Server) failover(r *http.Request) (any, error) {
	var req model.Failover
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	t, err := s.reg.GetTunnel(r.Context(), r.PathValue("ref"))
	if err != nil {
		return nil, err
	}
	if s.opts.Failover == nil {
		return nil, model.Errorf(model.KindConflict, "tunnel %s: this server has no data plane to fail over", t.Name)
	}
	return s.opts.Failover(t.ID, req.Replica)
}

func (s *Server) tunnelToken(r *http.Request) (any, error) {
	tun, secret, err := s.reg.TunnelSecret(r.Context(), r.PathValue("ref"))
	if err != nil {
		return nil, err
	}
	return model.CreatedTunnel{Tunnel: tun, Token: s.tokenFor(r.Context(), tun, secret)}, nil
}

func (s *Server) listRoutes(r *http.Request) (any, error) {
	q := r.URL.Query()
	f := model.RouteFilter{VNet: q.Get("vnet"), Tunnel: q.Get("tunnel")}
	for name, dst := range map[string]**netip.Prefix{"network_subset_of": &f.SubsetOf, "network_superset_of": &f.SupersetOf} {
		if v := q.Get(name); v != "" {
			p, err := model.ParsePrefix(v)
			if err != nil {
				return nil, err
			}
			*dst = &p
		}
	}
	if q.Has("comment") {
		c := q.Get("comment")
		f.Comment = &c
	}
	show, err := queryBool(r, "show_deleted")
	if err != nil {
		return nil, err
	}
	f.ShowDeleted = show != nil && *show
	return nonNil(s.reg.ListRoutes(r.Context(), f))
}

func (s *Server) addRoute(r *http.Request) (any, error) {
	var req model.NewRoute
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	rt, err := s.reg.AddRoute(r.Context(), req)
	if err == nil && rt.Existing {
		return withStatus{http.StatusOK, rt}, nil // adopted: nothing was created
	}
	return rt, err
}

// withStatus is an answer with another status than handle's default.
type withStatus struct {
	code int
	v    any
}

func (s *Server) getRoute(r *http.Request) (any, error) {
	ip, err := model.ParseAddr(r.PathValue("ip"))
	if err != nil {
		return nil, err
	}
	rt, err := s.reg.GetRoute(r.Context(), r.URL.Query().Get("vnet"), ip)
	if err == nil && s.opts.Connections != nil {
		for _, c := range s.opts.Connections()[rt.TunnelID] {
			if c.State == model.ReplicaActive {
				rt.Edge = c.Edge
			}
		}
	}
	return rt, err
}

func (s *Server) deleteRoute(r *http.Request) (any, error) {
	return s.reg.DeleteRoute(r.Context(), r.URL.Query().Get("vnet"), r.PathValue("ref"))
}

func (s *Server) overlaps(r *http.Request) (any, error) {
	return nonNil(s.reg.Overlaps(r.Context()))
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T, err error) ([]T, error) {
	if s == nil {
		s = []T{}
	}
	return s, err
}
