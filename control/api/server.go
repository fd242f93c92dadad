// Package api serves the control plane's REST/JSON API under /v1 with bearer
// token authentication. It imports model, registry, store and token; the CLI
// reaches it only through package client.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/token"
)

// maxBody bounds request bodies; every request fits in far less.
const maxBody = 64 << 10

// EdgeInfo is what the edge puts into the tokens it hands out.
type EdgeInfo struct {
	API      string // https URL of this API as agents reach it
	CAPin    string // pki.Pin of the CA that signed the API certificate
	Endpoint string // host:port of the WireGuard listener
	EdgeKey  string // base64 WireGuard public key
	MTU      int    // the tunnel MTU agents use
	MASQUE   string // host:port of the MASQUE listener; empty: none
}

// Options configure a Server.
type Options struct {
	// AdminTokenHash is the SHA-256 of the admin bearer token.
	AdminTokenHash [32]byte
	// Edge is copied into tunnel tokens.
	Edge EdgeInfo
	// Log receives request errors; nil discards them.
	Log *slog.Logger
	// Connections reports the live connector sessions of each tunnel; nil means none.
	Connections func() map[uuid.UUID][]model.Connection
	// Failover makes a replica of a tunnel active by hand (a connector id or
	// hostname; empty means the best standby) and returns it; nil means the
	// API cannot fail over.
	Failover func(tunnel uuid.UUID, replica string) (model.Connection, error)
	// Sessions lists the agent sessions of every edge of a cluster, from
	// its session registry, for the edges device list shows; nil for a
	// single edge.
	Sessions func() []model.Session
	// LastSeen reports when the edge last heard from each device; nil means never.
	LastSeen func() map[uuid.UUID]time.Time
	// LastHandshake reports when this edge last completed a WireGuard
	// handshake with each device; nil means never.
	LastHandshake func() map[uuid.UUID]time.Time
	// PathMTU reports what path MTU discovery found on each device's
	// WireGuard session with this edge; nil means none.
	PathMTU func() map[uuid.UUID]model.PathMTU
	// Stats reports the data plane's counters for GET /v1/stats; nil means none.
	Stats func() any
	// FlowLog emits the last n flow records that match the filter, then, if
	// follow, new ones until ctx ends; nil means the server keeps no flow log.
	FlowLog func(ctx context.Context, f model.FlowFilter, n int, follow bool, emit func(model.FlowRecord) error) error
	// TestFlow judges a flow with the edge's own policy engine for POST
	// /v1/policies/test, filling the verdict's Action, Silent, PolicyID,
	// Rules and Rev; nil means the server cannot test flows.
	TestFlow func(ctx context.Context, in model.FlowTestInput) (model.FlowVerdict, error)
	// Edges lists the edges of the cluster for GET /v1/edges; nil means
	// this edge alone, as Edge describes it.
	Edges func(ctx context.Context) ([]model.Edge, error)
	// EdgesChanged returns a channel that is closed at the next change of
	// the cluster's healthy edges (one registering, lapsing or withdrawing):
	// configuration long polls then answer with the new list at once rather
	// than when the cached list expires. nil: lists are only refreshed
	// every peerAPIsTTL.
	EdgesChanged func() <-chan struct{}
	// Limits bound connections and their timeouts (see HTTPServer and
	// Listener); zero fields take the defaults.
	Limits Limits
	// Logins is the edge's OIDC sign-in service (control/oidc.RP); nil:
	// the login endpoints answer that sign-in is not configured.
	Logins Logins
	// AdminGroup is the identity provider's group whose members may sign
	// in as admins; empty: nobody may.
	AdminGroup string
	// AdminSessionTTL is how long an admin sign-in lasts; zero means
	// DefaultAdminSessionTTL.
	AdminSessionTTL time.Duration
}

// Server is the API's HTTP handler.
type Server struct {
	reg     *registry.Registry
	opts    Options
	limits  Limits // opts.Limits with defaults
	log     *slog.Logger
	mux     *routeMux
	peers   peerAPIs     // the other edges' API addresses, for agents
	feed    *configFeed  // the store's changes, for configuration long polls
	console http.Handler // the web console, at every path outside /v1; nil: none
	admins  *adminSessions
}

// NewServer returns the API handler over reg. It watches reg's store for
// the agents' configuration long polls until Close, or until the store closes.
func NewServer(reg *registry.Registry, opts Options) *Server {
	s := &Server{reg: reg, opts: opts, limits: opts.Limits.withDefaults(), log: opts.Log, mux: newRouteMux(), admins: newAdminSessions()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.feed = newConfigFeed(reg, s.log)
	s.routes()
	return s
}

// Close stops the server's store watch and waits for it; configuration
// long polls still waiting answer 503 (retry). Close the HTTP server first.
func (s *Server) Close() error {
	s.feed.stop()
	return nil
}

func (s *Server) routes() {
	h := func(pattern string, fn func(*http.Request) (any, error)) {
		s.mux.HandleFunc(pattern, s.handle(fn))
	}
	h("GET /v1/vnets", s.listVNets)
	h("POST /v1/vnets", s.createVNet)
	h("GET /v1/vnets/{ref}", s.getVNet)
	h("PATCH /v1/vnets/{ref}", s.updateVNet)
	h("DELETE /v1/vnets/{ref}", s.deleteVNet)

	h("GET /v1/tunnels", s.listTunnels)
	h("POST /v1/tunnels", s.createTunnel)
	h("GET /v1/tunnels/{ref}", s.getTunnel)
	h("DELETE /v1/tunnels/{ref}", s.deleteTunnel)
	h("GET /v1/tunnels/{ref}/token", s.tunnelToken)
	h("POST /v1/tunnels/{ref}/failover", s.failover)

	h("GET /v1/routes", s.listRoutes)
	h("POST /v1/routes", s.addRoute)
	h("GET /v1/routes/ip/{ip}", s.getRoute)
	h("GET /v1/routes/overlaps", s.overlaps)
	h("DELETE /v1/routes/{ref...}", s.deleteRoute)
	h("GET /v1/stats", func(*http.Request) (any, error) {
		if s.opts.Stats == nil {
			return struct{}{}, nil
		}
		return s.opts.Stats(), nil
	})

	h("GET /v1/edges", s.listEdges)

	s.mux.HandleFunc("GET /v1/watch", s.authorized(s.watch))
	s.agentRoutes()
	s.deviceRoutes()
	s.policyRoutes()
	s.dnsRoutes()
	s.loginRoutes()
	s.userRoutes()
	s.openAPIRoutes()
	s.mux.HandleFunc("/v1/", s.authorized(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, model.Errorf(model.KindNotFound, "no API endpoint %s %s", r.Method, r.URL.Path))
	}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.console == nil {
			s.authorized(func(w http.ResponseWriter, r *http.Request) {
				writeError(w, model.Errorf(model.KindNotFound, "no API endpoint %s %s (the API is under /v1)", r.Method, r.URL.Path))
			})(w, r)
			return
		}
		s.console.ServeHTTP(w, r)
	})
}

// SetConsole serves h (the operator's web console) at every path outside
// /v1; call it before serving. Without one, those paths answer 404 like an
// unknown API endpoint.
func (s *Server) SetConsole(h http.Handler) { s.console = h }

// SetAPIURL sets the API address that tokens carry; call it before serving
// when the address is known only after listening.
func (s *Server) SetAPIURL(u string) { s.opts.Edge.API = u }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handle wraps an endpoint: authentication, then JSON in, JSON or error out.
func (s *Server) handle(fn func(*http.Request) (any, error)) http.HandlerFunc {
	return s.authorized(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		v, err := fn(r)
		if err != nil {
			if e := model.AsError(err); e.Kind == model.KindInternal {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, err)
			return
		}
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		if st, ok := v.(withStatus); ok {
			status, v = st.code, st.v
		}
		writeJSON(w, status, v)
	})
}

func (s *Server) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := token.Bearer(r.Header.Get("Authorization"))
		if !ok {
			writeError(w, model.Errorf(model.KindUnauthorized, "missing bearer token: send Authorization: Bearer <admin token>"))
			return
		}
		sum := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(sum[:], s.opts.AdminTokenHash[:]) != 1 && !s.admins.valid(sum) {
			writeError(w, model.Errorf(model.KindUnauthorized, "invalid token"))
			return
		}
		next(w, r)
	}
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// HTTPStatus maps a control plane error to its HTTP status: the one place where
// domain errors meet HTTP.
func HTTPStatus(err error) (int, ErrorBody) {
	e := model.AsError(err)
	if errors.Is(err, store.ErrUnavailable) {
		e = &model.Error{Kind: model.KindUnavailable, Code: model.CodeUnavailable,
			Message: "the configuration store is unavailable, nothing was changed: " + err.Error()}
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		e = model.Errorf(model.KindInvalid, "request body is larger than %d bytes", maxBody)
	}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, context.Canceled):
		status = 499 // the client went away
	case e.Kind == model.KindInvalid:
		status = http.StatusBadRequest
	case e.Kind == model.KindNotFound:
		status = http.StatusNotFound
	case e.Kind == model.KindConflict:
		status = http.StatusConflict
	case e.Kind == model.KindForbidden:
		status = http.StatusForbidden
	case e.Kind == model.KindUnauthorized:
		status = http.StatusUnauthorized
	case e.Kind == model.KindUnavailable:
		status = http.StatusServiceUnavailable
	}
	return status, ErrorBody{Code: e.Code, Message: e.Message}
}

func writeError(w http.ResponseWriter, err error) {
	status, body := HTTPStatus(err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decode reads one JSON object from the body into v, refusing unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return model.Errorf(model.KindInvalid, "request body is empty; send a JSON object")
		}
		return model.Errorf(model.KindInvalid, "invalid JSON body: %v", err)
	}
	if dec.More() {
		return model.Errorf(model.KindInvalid, "invalid JSON body: data after the object")
	}
	return nil
}

// queryBool parses an optional boolean query parameter.
func queryBool(r *http.Request, name string) (*bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return nil, model.Errorf(model.KindInvalid, "query parameter %s=%q is not true or false", name, s)
	}
	return &b, nil
}

func (s *Server) tokenFor(ctx context.Context, tun model.Tunnel, secret []byte) string {
	return token.Tunnel{
		TunnelID: tun.ID, Secret: secret,
		API: s.opts.Edge.API, APIs: s.otherAPIs(ctx), CAPin: s.opts.Edge.CAPin,
		Endpoint: s.opts.Edge.Endpoint, EdgeKey: s.opts.Edge.EdgeKey,
	}.Encode()
}

// watch streams the store's change feed as newline-delimited JSON: one object
// per revision, naming the keys that changed (not their values).
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if err != nil && r.URL.Query().Get("after") != "" {
		writeError(w, model.Errorf(model.KindInvalid, "query parameter after=%q is not a revision", r.URL.Query().Get("after")))
		return
	}
	ch, err := s.reg.Store().Watch(r.Context(), after)
	if err != nil {
		writeError(w, err)
		return
	}
	send, end := s.streamNDJSON(w)
	defer end()
	for c := range ch {
		type key struct {
			Coll   string `json:"coll"`
			Key    string `json:"key"`
			Delete bool   `json:"delete,omitempty"`
		}
		msg := struct {
			Rev   int64  `json:"rev"`
			Keys  []key  `json:"keys,omitempty"`
			Error string `json:"error,omitempty"`
		}{Rev: c.Rev}
		if c.Err != nil {
			msg.Error = fmt.Sprint(c.Err)
		}
		for _, e := range c.Events {
			msg.Keys = append(msg.Keys, key{e.Coll, e.Key, e.Delete})
		}
		if send(msg) != nil {
			return
		}
	}
}

// streamNDJSON starts a newline-delimited JSON response and returns the
// function that sends one object and flushes it to the client, and the one
// to defer. A stream lasts as long as its client wants: its request has no
// body, so it lifts the read deadline (reads only notice the client going
// away), and each object gets the write timeout afresh, none running while
// the stream waits for the next, so a client that stops reading is still cut
// off.
func (s *Server) streamNDJSON(w http.ResponseWriter) (send func(v any) error, end func()) {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	rc.SetWriteDeadline(time.Time{})
	enc := json.NewEncoder(w)
	send = func(v any) error {
		rc.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout))
		defer rc.SetWriteDeadline(time.Time{})
		if err := enc.Encode(v); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	// The end of the response is written after the handler returns.
	end = func() { rc.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout)) }
	return send, end
}
