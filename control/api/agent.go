package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/token"
)

// Agent endpoints authenticate with the agent's own credential, not the admin
// token: a connector sends its tunnel token as the bearer token.

// maxWait bounds a long poll for a configuration change.
const maxWait = 60 * time.Second

func (s *Server) agentRoutes() {
	s.mux.HandleFunc("POST /v1/agent/connectors", s.tunnelAuth(s.enrollConnector))
	s.mux.HandleFunc("GET /v1/agent/connectors/{id}/config", s.tunnelAuth(s.connectorConfig))
	s.mux.HandleFunc("POST /v1/agent/credential/check", checkLimits().wrap(s.checkCredential))
}

// checkLimits bounds credential checks (switchyard doctor), which anyone may
// call: per client, then for everyone.
var checkLimits = func() *rateLimit { return newRateLimit("credential checks", 30, 10, 600, 100) }

// checkCredential answers whether the bearer credential, a tunnel token or a
// device credential, is one the agent endpoints accept, and whether the
// request's WireGuard key is enrolled under it. It changes nothing.
func (s *Server) checkCredential(w http.ResponseWriter, r *http.Request) {
	var req model.CredentialCheckRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.PublicKey != "" {
		if err := model.ValidateKey(req.PublicKey); err != nil {
			writeError(w, err)
			return
		}
	}
	ctx := r.Context()
	bearer, _ := token.Bearer(r.Header.Get("Authorization"))
	var out model.CredentialCheck
	enrolled := false
	if _, err := token.DecodeTunnel(bearer); err == nil {
		_, t, err := s.authenticateTunnel(r, bearer)
		if err != nil {
			writeError(w, err)
			return
		}
		out = model.CredentialCheck{Kind: "tunnel", ID: t.ID, Name: t.Name}
		if req.PublicKey != "" {
			if enrolled, err = s.reg.TunnelKeyEnrolled(ctx, t.ID, req.PublicKey); err != nil {
				writeError(w, err)
				return
			}
		}
	} else {
		d, err := s.authenticateDevice(r, bearer)
		if err != nil {
			writeError(w, err)
			return
		}
		out = model.CredentialCheck{Kind: "device", ID: d.ID, Name: d.Name}
		enrolled = d.Key == req.PublicKey
	}
	if req.PublicKey != "" {
		out.KeyEnrolled = &enrolled
	}
	out.Edge = s.edgePeer(ctx)
	writeJSON(w, http.StatusOK, out)
}

// tunnelAuth authenticates a request by the tunnel token in its Authorization header.
func (s *Server) tunnelAuth(next func(http.ResponseWriter, *http.Request, token.Tunnel)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		bearer, ok := token.Bearer(r.Header.Get("Authorization"))
		if !ok {
			writeError(w, model.Errorf(model.KindUnauthorized, "missing tunnel token"))
			return
		}
		tok, _, err := s.authenticateTunnel(r, bearer)
		if err != nil {
			writeError(w, err)
			return
		}
		next(w, r, tok)
	}
}

// authenticateTunnel decodes bearer as a tunnel token and checks it against
// its live tunnel.
func (s *Server) authenticateTunnel(r *http.Request, bearer string) (token.Tunnel, model.Tunnel, error) {
	tok, err := token.DecodeTunnel(bearer)
	if err != nil {
		return tok, model.Tunnel{}, model.Errorf(model.KindUnauthorized, "%v", err)
	}
	t, err := s.reg.AuthenticateTunnel(r.Context(), tok.TunnelID, tok.Secret)
	return tok, t, err
}

func (s *Server) enrollConnector(w http.ResponseWriter, r *http.Request, tok token.Tunnel) {
	var req model.ConnectorEnrollment
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	c, err := s.reg.EnrollConnector(r.Context(), tok.TunnelID, tok.Secret, req)
	if err != nil {
		writeError(w, err)
		return
	}
	cfg, err := s.connectorConfigFor(r, c.ID)
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("connector enrolled", "tunnel", cfg.TunnelName, "connector", c.ID, "hostname", c.Hostname)
	writeJSON(w, http.StatusCreated, model.EnrolledConnector{Connector: c, Config: cfg})
}

func (s *Server) connectorConfigFor(r *http.Request, id uuid.UUID) (model.ConnectorConfig, error) {
	cfg, err := s.reg.ConnectorConfig(r.Context(), id)
	cfg.Edge = s.edgePeer(r.Context())
	cfg.MTU = s.opts.Edge.MTU
	return cfg, err
}

func (s *Server) connectorConfig(w http.ResponseWriter, r *http.Request, tok token.Tunnel) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		writeError(w, model.Errorf(model.KindInvalid, "connector id %q is not a UUID", r.PathValue("id")))
		return
	}
	s.longPoll(w, r, func(cfgs *registry.Configs) (any, error) {
		cfg, err := cfgs.ConnectorConfig(id)
		cfg.Edge = s.edgePeer(r.Context())
		cfg.MTU = s.opts.Edge.MTU
		if err == nil && cfg.TunnelID != tok.TunnelID {
			err = model.Errorf(model.KindNotFound, "connector %s is not enrolled in this tunnel", id)
		}
		return cfg, err
	})
}

// longPoll answers with compute's result as soon as it differs from the
// version the client holds (If-None-Match), waiting up to ?wait= seconds for a
// change in the store; 304 Not Modified when nothing changed in time. compute
// reads the registry's Configs at the store's revision when the poll began,
// then at each revision the server's feed announces: one read of the store
// per change for every poll of the server, not one per poll. A change of the
// cluster's healthy edges (Options.EdgesChanged) also ends the wait, since
// configurations list them; the first poll to recompute lists the edges
// again, the others reuse that list (clusterPeers).
func (s *Server) longPoll(w http.ResponseWriter, r *http.Request, compute func(*registry.Configs) (any, error)) {
	var wait time.Duration
	if q := r.URL.Query().Get("wait"); q != "" {
		secs, err := strconv.Atoi(q)
		if err != nil || secs < 0 {
			writeError(w, model.Errorf(model.KindInvalid, "query parameter wait=%q is not a number of seconds", q))
			return
		}
		wait = min(time.Duration(secs)*time.Second, maxWait)
	}
	// The answer may come only after the wait: the request's deadlines
	// (the server's Limits) start when the wait ends.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(wait + s.limits.ReadTimeout))
	rc.SetWriteDeadline(time.Now().Add(wait + s.limits.WriteTimeout))
	have := r.Header.Get("If-None-Match")
	ctx := r.Context()
	// The generation first: a change committed after it is read ends it.
	gen := s.feed.current()
	edges := s.edgesChanged()
	rev, err := s.reg.Rev(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		cfgs, err := s.feed.configs(ctx, max(rev, gen.rev))
		if err != nil {
			writeError(w, err)
			return
		}
		v, err := compute(cfgs)
		if err != nil {
			writeError(w, err)
			return
		}
		// One encoding serves as the body and as what the ETag hashes.
		buf, _ := json.MarshalIndent(v, "", "  ")
		buf = append(buf, '\n')
		sum := sha256.Sum256(buf)
		tag := `"` + hex.EncodeToString(sum[:16]) + `"`
		if tag != have {
			w.Header().Set("ETag", tag)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.Write(buf)
			return
		}
		s.feed.waiting.Add(1)
		select {
		case <-gen.done:
			s.feed.waiting.Add(-1)
			if gen.err != nil {
				writeError(w, fmt.Errorf("change feed: %w", gen.err)) // 503 when the store is down
				return
			}
			gen = s.feed.current()
		case <-edges:
			s.feed.waiting.Add(-1)
			edges = s.edgesChanged()
		case <-timeout.C:
			s.feed.waiting.Add(-1)
			w.Header().Set("ETag", tag)
			w.WriteHeader(http.StatusNotModified)
			return
		case <-ctx.Done(): // the client went away, or the server stops: a body for the latter
			s.feed.waiting.Add(-1)
			writeError(w, model.Errorf(model.KindUnavailable, "watch configuration: the server is stopping"))
			return
		}
	}
}
