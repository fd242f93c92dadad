package api

import (
	"net/http"

	"github.com/switchyard/switchyard/control/model"
)

// dnsRoutes serves the resolver rules and the overlay zone.
func (s *Server) dnsRoutes() {
	for pattern, fn := range map[string]func(*http.Request) (any, error){
		"GET /v1/dns/resolvers":          s.listDNSResolvers,
		"POST /v1/dns/resolvers":         s.addDNSResolver,
		"DELETE /v1/dns/resolvers/{ref}": s.removeDNSResolver,
		"GET /v1/dns/zone":               s.getDNSZone,
		"PUT /v1/dns/zone":               s.setDNSZone,
	} {
		s.mux.HandleFunc(pattern, s.handle(fn))
	}
}

func (s *Server) listDNSResolvers(r *http.Request) (any, error) {
	return nonNil(s.reg.ListDNSResolvers(r.Context(), r.URL.Query().Get("vnet")))
}

func (s *Server) addDNSResolver(r *http.Request) (any, error) {
	var req model.NewDNSResolver
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return s.reg.AddDNSResolver(r.Context(), req)
}

func (s *Server) removeDNSResolver(r *http.Request) (any, error) {
	return s.reg.RemoveDNSResolver(r.Context(), r.PathValue("ref"), r.URL.Query().Get("vnet"))
}

func (s *Server) getDNSZone(r *http.Request) (any, error) {
	z, err := s.reg.DNSZone(r.Context())
	return model.DNSZone{Zone: z}, err
}

func (s *Server) setDNSZone(r *http.Request) (any, error) {
	var req model.DNSZone
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	z, err := s.reg.SetDNSZone(r.Context(), req.Zone)
	return model.DNSZone{Zone: z}, err
}
