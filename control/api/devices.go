package api

import (
	"net/http"
	"slices"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/token"
)

func (s *Server) deviceRoutes() {
	h := func(pattern string, fn func(*http.Request) (any, error)) {
		s.mux.HandleFunc(pattern, s.handle(fn))
	}
	h("GET /v1/devices", s.listDevices)
	h("POST /v1/devices", s.registerDevice)
	h("POST /v1/devices/{ref}/revoke", s.revokeDevice)
	h("POST /v1/devices/{ref}/unrevoke", s.unrevokeDevice)
	h("GET /v1/enroll-tokens", s.listEnrollTokens)
	h("POST /v1/enroll-tokens", s.createEnrollToken)
	h("DELETE /v1/enroll-tokens/{id}", s.deleteEnrollToken)
	h("GET /v1/split-tunnel", s.getSplitTunnel)
	h("PUT /v1/split-tunnel/mode", s.setSplitMode)
	h("POST /v1/split-tunnel/entries", s.addSplitEntry)
	h("DELETE /v1/split-tunnel/entries/{addr...}", s.removeSplitEntry)

	s.mux.HandleFunc("POST /v1/agent/devices", s.enrollDevice)
	s.mux.HandleFunc("GET /v1/agent/devices/config", s.deviceAuth(s.deviceConfig))
	s.mux.HandleFunc("PUT /v1/agent/devices/vnet", s.deviceAuth(s.selectVNet))
	s.mux.HandleFunc("GET /v1/agent/devices/vnets", s.deviceAuth(s.deviceVNets))
	s.mux.HandleFunc("PUT /v1/agent/devices/posture", s.deviceAuth(s.reportPosture))
	s.postureRoutes()
}

func (s *Server) listDevices(r *http.Request) (any, error) {
	show, err := queryBool(r, "show_revoked")
	if err != nil {
		return nil, err
	}
	devices, err := nonNil(s.reg.ListDevices(r.Context(), show != nil && *show))
	if s.opts.LastSeen != nil {
		seen := s.opts.LastSeen()
		for i := range devices {
			if t, ok := seen[devices[i].ID]; ok {
				devices[i].LastSeen = &t
			}
		}
	}
	if s.opts.LastHandshake != nil {
		hs := s.opts.LastHandshake()
		for i := range devices {
			if t, ok := hs[devices[i].ID]; ok {
				devices[i].LastHandshake = &t
			}
		}
	}
	if s.opts.PathMTU != nil {
		pm := s.opts.PathMTU()
		for i := range devices {
			if m, ok := pm[devices[i].ID]; ok {
				devices[i].PathMTU = &m
			}
		}
	}
	if s.opts.Sessions != nil {
		fillDeviceEdges(devices, s.opts.Sessions())
	}
	return devices, err
}

// fillDeviceEdges names, on each device, the edge of a cluster that carries
// its traffic (its session that is not a standby: the active one when two
// edges both say so for a moment) and the edges of its standby sessions.
func fillDeviceEdges(devices []model.Device, sessions []model.Session) {
	at := map[uuid.UUID]*model.Device{}
	for i := range devices {
		at[devices[i].ID] = &devices[i]
	}
	active := map[uuid.UUID]bool{}
	for _, ss := range sessions {
		d := at[ss.ID]
		switch {
		case ss.Kind != model.SessionDevice || d == nil:
		case ss.Standby:
			d.StandbyEdges = append(d.StandbyEdges, ss.Edge)
		case d.Edge == "" || ss.Active && !active[ss.ID]:
			d.Edge, active[ss.ID] = ss.Edge, ss.Active
		}
	}
	for _, d := range at {
		slices.Sort(d.StandbyEdges)
	}
}

// registerDevice registers a stock WireGuard device by its public key and
// answers with its configuration, this edge as its peer.
func (s *Server) registerDevice(r *http.Request) (any, error) {
	var req model.RegisterDevice
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	d, err := s.reg.RegisterDevice(r.Context(), req)
	if err != nil {
		return nil, err
	}
	cfg, err := s.deviceConfigFor(r, d.ID)
	if err != nil {
		return nil, err
	}
	s.log.Info("wireguard device registered", "device", d.ID, "name", d.Name, "ip", d.IP, "user", d.User)
	return model.RegisteredDevice{Device: d, Config: cfg}, nil
}

func (s *Server) revokeDevice(r *http.Request) (any, error) {
	return s.reg.RevokeDevice(r.Context(), r.PathValue("ref"))
}

func (s *Server) unrevokeDevice(r *http.Request) (any, error) {
	return s.reg.UnrevokeDevice(r.Context(), r.PathValue("ref"))
}

func (s *Server) listEnrollTokens(r *http.Request) (any, error) {
	return nonNil(s.reg.ListEnrollTokens(r.Context()))
}

func (s *Server) createEnrollToken(r *http.Request) (any, error) {
	var req model.NewEnrollToken
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	t, secret, err := s.reg.CreateEnrollToken(r.Context(), req)
	if err != nil {
		return nil, err
	}
	t.Token = token.Secret{Kind: token.KindEnroll, ID: t.ID, Secret: secret, API: s.opts.Edge.API, APIs: s.otherAPIs(r.Context()), CAPin: s.opts.Edge.CAPin}.Encode()
	return t, nil
}

func (s *Server) deleteEnrollToken(r *http.Request) (any, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return nil, model.Errorf(model.KindInvalid, "enrollment token id %q is not a UUID", r.PathValue("id"))
	}
	return struct{}{}, s.reg.DeleteEnrollToken(r.Context(), id)
}

func (s *Server) getSplitTunnel(r *http.Request) (any, error) { return s.reg.SplitTunnel(r.Context()) }

func (s *Server) setSplitMode(r *http.Request) (any, error) {
	var req struct {
		Mode string `json:"mode"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return s.reg.SetSplitMode(r.Context(), req.Mode)
}

func (s *Server) addSplitEntry(r *http.Request) (any, error) {
	var e model.SplitEntry
	if err := decode(r, &e); err != nil {
		return nil, err
	}
	return s.reg.AddSplitEntry(r.Context(), e)
}

func (s *Server) removeSplitEntry(r *http.Request) (any, error) {
	return s.reg.RemoveSplitEntry(r.Context(), r.PathValue("addr"))
}

// enrollDevice enrolls a device with the enrollment token in its
// Authorization header or, when the request names a finished sign-in
// (Login), as the user it verified.
func (s *Server) enrollDevice(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	var req model.DeviceEnrollment
	var tok token.Secret
	if h := r.Header.Get("Authorization"); h != "" {
		bearer, _ := token.Bearer(h)
		var err error
		if tok, err = token.DecodeSecret(bearer, token.KindEnroll); err != nil {
			writeError(w, model.Errorf(model.KindUnauthorized, "%v", err))
			return
		}
	}
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	var own registry.Credential
	if req.Credential != "" {
		cred, err := token.DecodeSecret(req.Credential, token.KindDevice)
		if err != nil {
			writeError(w, model.Errorf(model.KindUnauthorized, "enroll device: credential: %v", err))
			return
		}
		own = registry.Credential{ID: cred.ID, Secret: cred.Secret}
	}
	var d model.Device
	var secret []byte
	var err error
	switch {
	case req.Login != "":
		var id model.UserIdentity
		if id, err = s.loginIdentity(r, req.Login); err == nil {
			d, secret, err = s.reg.EnrollUserDevice(r.Context(), id, req, own)
		}
	case tok.ID == uuid.Nil:
		err = model.Errorf(model.KindUnauthorized, "enroll device: no enrollment token (Authorization: Bearer) and no sign-in (login)")
	default:
		d, secret, err = s.reg.EnrollDevice(r.Context(), registry.Credential{ID: tok.ID, Secret: tok.Secret}, req, own)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	cfg, err := s.deviceConfigFor(r, d.ID)
	if err != nil {
		writeError(w, err)
		return
	}
	cred := token.Secret{Kind: token.KindDevice, ID: d.ID, Secret: secret, API: s.opts.Edge.API, APIs: s.otherAPIs(r.Context()), CAPin: s.opts.Edge.CAPin}.Encode()
	if req.Login != "" {
		s.log.Info("device enrolled", "device", d.ID, "name", d.Name, "ip", d.IP, "user", d.User, "session_expires_at", d.SessionExpiresAt)
	} else {
		s.log.Info("device enrolled", "device", d.ID, "name", d.Name, "ip", d.IP, "user", d.User, "enroll_token", tok.ID)
	}
	writeJSON(w, http.StatusCreated, model.EnrolledDevice{Device: d, Credential: cred, Config: cfg})
}

// deviceAuth authenticates a request by the device credential in its Authorization header.
func (s *Server) deviceAuth(next func(http.ResponseWriter, *http.Request, model.Device)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		bearer, _ := token.Bearer(r.Header.Get("Authorization"))
		d, err := s.authenticateDevice(r, bearer)
		if err != nil {
			writeError(w, err)
			return
		}
		next(w, r, d)
	}
}

// authenticateDevice decodes bearer as a device credential and checks it
// against its device.
func (s *Server) authenticateDevice(r *http.Request, bearer string) (model.Device, error) {
	cred, err := token.DecodeSecret(bearer, token.KindDevice)
	if err != nil {
		return model.Device{}, model.Errorf(model.KindUnauthorized, "%v", err)
	}
	return s.reg.AuthenticateDevice(r.Context(), cred.ID, cred.Secret)
}

func (s *Server) deviceConfigFor(r *http.Request, id uuid.UUID) (model.DeviceConfig, error) {
	cfg, err := s.reg.DeviceConfig(r.Context(), id)
	cfg.Edge = s.edgePeer(r.Context())
	cfg.MTU = s.opts.Edge.MTU
	return cfg, err
}

func (s *Server) deviceConfig(w http.ResponseWriter, r *http.Request, d model.Device) {
	s.longPoll(w, r, func(cfgs *registry.Configs) (any, error) {
		cfg, err := cfgs.DeviceConfig(d.ID)
		cfg.Edge = s.edgePeer(r.Context())
		cfg.MTU = s.opts.Edge.MTU
		return cfg, err
	})
}

func (s *Server) selectVNet(w http.ResponseWriter, r *http.Request, d model.Device) {
	var req model.SelectVNet
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	v, err := s.reg.SelectVNet(r.Context(), d.ID, req.VNet)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) deviceVNets(w http.ResponseWriter, r *http.Request, d model.Device) {
	vnets, err := nonNil(s.reg.ListVNets(r.Context(), model.VNetFilter{}))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, vnets)
}
