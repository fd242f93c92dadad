package api

import (
	"net/http"

	"github.com/switchyard/switchyard/control/model"
)

// postureRoutes serves the admin's posture networks; a device's report
// (PUT /v1/agent/devices/posture) is among deviceRoutes.
func (s *Server) postureRoutes() {
	h := func(pattern string, fn func(*http.Request) (any, error)) {
		s.mux.HandleFunc(pattern, s.handle(fn))
	}
	h("GET /v1/posture/networks", func(r *http.Request) (any, error) {
		return nonNil(s.reg.PostureNetworks(r.Context()))
	})
	h("POST /v1/posture/networks", func(r *http.Request) (any, error) {
		var n model.PostureNetwork
		if err := decode(r, &n); err != nil {
			return nil, err
		}
		return s.reg.AddPostureNetwork(r.Context(), n)
	})
	h("DELETE /v1/posture/networks/{name}", func(r *http.Request) (any, error) {
		return s.reg.RemovePostureNetwork(r.Context(), r.PathValue("name"))
	})
}

// reportPosture stores the posture a device reports about its host.
func (s *Server) reportPosture(w http.ResponseWriter, r *http.Request, d model.Device) {
	var p model.Posture
	if err := decode(r, &p); err != nil {
		writeError(w, err)
		return
	}
	stored, err := s.reg.ReportPosture(r.Context(), d.ID, p)
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Debug("device posture", "device", d.ID, "firewall", stored.Firewall, "disk_encrypted", stored.DiskEncrypted, "network", stored.Network)
	writeJSON(w, http.StatusOK, stored)
}
