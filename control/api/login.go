package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/oidc"
	"github.com/switchyard/switchyard/control/token"
)

// Logins is the edge's sign-in service as enrollment uses it: the verified
// identity of a finished sign-in, once (DeviceEnrollment.Login).
// control/oidc.RP implements it, and loginFlows for the login endpoints.
type Logins interface {
	Identity(ctx context.Context, handle string) (model.UserIdentity, error)
}

// loginFlows is the rest of the sign-in service, for the login endpoints.
type loginFlows interface {
	Start(ctx context.Context, flow oidc.Flow, purpose oidc.Purpose, redirect string) (oidc.Login, error)
	Poll(handle string) (oidc.Result, error)
	Take(handle string, purpose oidc.Purpose) (model.UserIdentity, error)
	Callback(ctx context.Context, q url.Values) (string, model.UserIdentity, error)
}

var _ interface {
	Logins
	loginFlows
} = (*oidc.RP)(nil)

// DefaultAdminSessionTTL is how long an admin sign-in's token lasts.
const DefaultAdminSessionTTL = 12 * time.Hour

// LoginRequest is the body of POST /v1/agent/login.
type LoginRequest struct {
	Flow    oidc.Flow    `json:"flow"`    // empty: device
	Purpose oidc.Purpose `json:"purpose"` // empty: device
	// Redirect is a path on this edge the browser flow's callback sends the
	// browser to (the console's); empty shows a page.
	Redirect string `json:"redirect,omitempty"`
}

// LoginStatus is the answer to POST /v1/agent/login/{handle}.
type LoginStatus struct {
	Status   string              `json:"status"` // "pending" or "done"
	Identity *model.UserIdentity `json:"identity,omitempty"`
	// AdminToken is an admin session's bearer token (purpose admin), valid
	// until AdminExpiresAt.
	AdminToken     string     `json:"admin_token,omitempty"`
	AdminExpiresAt *time.Time `json:"admin_expires_at,omitempty"`
}

// Rate limits of the sign-in endpoints, which anyone may call: a start asks
// the identity provider for a device code and holds a pending sign-in for
// ten minutes, a callback exchanges a code with the provider, a poll is
// cheap (a CLI polls every few seconds). Per client, then for everyone.
var (
	startLimits    = func() *rateLimit { return newRateLimit("sign-in requests", 10, 10, 120, 60) }
	pollLimits     = func() *rateLimit { return newRateLimit("sign-in polls", 300, 20, 6000, 200) }
	callbackLimits = func() *rateLimit { return newRateLimit("sign-in callbacks", 60, 10, 1200, 50) }
)

func (s *Server) loginRoutes() {
	s.mux.HandleFunc("POST /v1/agent/login", startLimits().wrap(s.startLogin))
	s.mux.HandleFunc("POST /v1/agent/login/{handle}", pollLimits().wrap(s.pollLogin))
	s.mux.HandleFunc("GET /v1/login/callback", callbackLimits().wrap(s.loginCallback))
	s.mux.HandleFunc("DELETE /v1/admin/session", s.authorized(s.endAdminSession))
}

// endAdminSession ends the admin session whose token the request carries
// (switchyard logout): the token is refused from then on.
func (s *Server) endAdminSession(w http.ResponseWriter, r *http.Request) {
	tok, _ := token.Bearer(r.Header.Get("Authorization"))
	email, ok := s.admins.end(sha256.Sum256([]byte(tok)))
	if !ok {
		writeError(w, model.Errorf(model.KindInvalid, "the request's token is the edge's admin token, not an admin session: nothing to end"))
		return
	}
	s.log.Info("admin signed out", "email", email)
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) loginFlows() (loginFlows, error) {
	if f, ok := s.opts.Logins.(loginFlows); ok {
		return f, nil
	}
	return nil, model.Errorf(model.KindInvalid, "sign-in is not configured: start the edge with --oidc-issuer, --oidc-client-id and --oidc-client-secret-file")
}

func (s *Server) startLogin(w http.ResponseWriter, r *http.Request) {
	f, err := s.loginFlows()
	if err != nil {
		writeError(w, err)
		return
	}
	var req LoginRequest
	if err := decode(r, &req); err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			err = model.Errorf(model.KindInvalid, "request body is larger than %d bytes", maxLoginBody)
		}
		writeError(w, err)
		return
	}
	if req.Flow == "" {
		req.Flow = oidc.FlowDevice
	}
	if req.Purpose == "" {
		req.Purpose = oidc.PurposeDevice
	}
	if req.Redirect != "" && (!strings.HasPrefix(req.Redirect, "/") || strings.HasPrefix(req.Redirect, "//") || strings.HasPrefix(req.Redirect, "/\\")) {
		writeError(w, model.Errorf(model.KindInvalid, "sign-in redirect %q is not a path on this edge", req.Redirect))
		return
	}
	l, err := f.Start(r.Context(), req.Flow, req.Purpose, req.Redirect)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, l)
}

func (s *Server) pollLogin(w http.ResponseWriter, r *http.Request) {
	f, err := s.loginFlows()
	if err != nil {
		writeError(w, err)
		return
	}
	h := r.PathValue("handle")
	res, err := f.Poll(h)
	if err != nil {
		writeError(w, err)
		return
	}
	if !res.Done {
		writeJSON(w, http.StatusAccepted, LoginStatus{Status: "pending"})
		return
	}
	if res.Purpose != oidc.PurposeAdmin {
		writeJSON(w, http.StatusOK, LoginStatus{Status: "done", Identity: &res.Identity})
		return
	}
	id, err := f.Take(h, oidc.PurposeAdmin)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.isAdmin(id); err != nil {
		writeError(w, err)
		return
	}
	tok, exp := s.admins.create(id.Email, s.adminTTL())
	s.log.Info("admin signed in", "email", id.Email, "subject", id.Subject)
	writeJSON(w, http.StatusOK, LoginStatus{Status: "done", Identity: &id, AdminToken: tok, AdminExpiresAt: &exp})
}

// isAdmin refuses an identity outside the admin group.
func (s *Server) isAdmin(id model.UserIdentity) error {
	if s.opts.AdminGroup == "" {
		return model.Errorf(model.KindForbidden, "admin sign-in is not configured: start the edge with --oidc-admin-group")
	}
	if !slices.Contains(id.Groups, s.opts.AdminGroup) {
		return model.Errorf(model.KindForbidden, "%s is not an admin: not in the identity provider's group %q", id.Email, s.opts.AdminGroup)
	}
	return nil
}

func (s *Server) adminTTL() time.Duration {
	if s.opts.AdminSessionTTL > 0 {
		return s.opts.AdminSessionTTL
	}
	return DefaultAdminSessionTTL
}

var callbackPage = template.Must(template.New("").Parse(`<!doctype html><meta charset="utf-8"><title>Switchyard sign-in</title>
<h1>{{if .Error}}Sign-in failed{{else}}Signed in{{end}}</h1>
<p>{{if .Error}}{{.Error}}{{else}}Signed in as {{.Email}}. You can close this window and return to your terminal.{{end}}</p>`))

func (s *Server) loginCallback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	f, err := s.loginFlows()
	if err == nil {
		var redirect string
		var id model.UserIdentity
		if redirect, id, err = f.Callback(r.Context(), r.URL.Query()); err == nil {
			if redirect != "" {
				http.Redirect(w, r, redirect, http.StatusSeeOther)
				return
			}
			callbackPage.Execute(w, map[string]string{"Email": id.Email})
			return
		}
	}
	status, body := HTTPStatus(err)
	w.WriteHeader(status)
	callbackPage.Execute(w, map[string]string{"Error": body.Message})
}

// maxAdminSessions bounds the admin sessions; beyond it the oldest ends.
const maxAdminSessions = 1024

// adminSessions are the bearer tokens of admins who signed in with the
// identity provider, in this edge's memory, by SHA-256.
type adminSessions struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[[32]byte]adminSession
}

type adminSession struct {
	email   string
	expires time.Time
}

func newAdminSessions() *adminSessions {
	return &adminSessions{now: time.Now, m: map[[32]byte]adminSession{}}
}

// create returns a new admin session's token and expiry.
func (a *adminSessions) create(email string, ttl time.Duration) (string, time.Time) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := "sya_" + base64.RawURLEncoding.EncodeToString(b)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	var oldest [32]byte
	var oldestAt time.Time
	for k, v := range a.m {
		if !now.Before(v.expires) {
			delete(a.m, k)
		} else if oldestAt.IsZero() || v.expires.Before(oldestAt) {
			oldest, oldestAt = k, v.expires
		}
	}
	if len(a.m) >= maxAdminSessions {
		delete(a.m, oldest)
	}
	exp := now.Add(ttl)
	a.m[sha256.Sum256([]byte(tok))] = adminSession{email: email, expires: exp}
	return tok, exp
}

// end ends the session whose token has hash sum, and says whose it was.
func (a *adminSessions) end(sum [32]byte) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	x, ok := a.m[sum]
	delete(a.m, sum)
	return x.email, ok
}

// valid says whether sum is the hash of a live admin session's token.
func (a *adminSessions) valid(sum [32]byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	x, ok := a.m[sum]
	return ok && a.now().Before(x.expires)
}
