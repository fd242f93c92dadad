package web

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strings"
)

// ssoCookie carries a console SSO sign-in's handle from its start to its
// end. It is Lax, not Strict: the browser comes back from the identity
// provider, another site.
const ssoCookie = "__Host-switchyard-sso"

const ssoDone = "/signin/sso/done"

// apiJSON calls the edge's API in process without credentials (the login
// endpoints need none) and decodes its answer into v.
func (s *Server) apiJSON(method, path string, body any, v any) (int, string) {
	var b bytes.Buffer
	if body != nil {
		json.NewEncoder(&b).Encode(body)
	}
	rec := httptest.NewRecorder()
	s.cfg.API.ServeHTTP(rec, httptest.NewRequest(method, path, &b))
	if v != nil {
		json.Unmarshal(rec.Body.Bytes(), v)
	}
	var e struct {
		Message string `json:"message"`
	}
	json.Unmarshal(rec.Body.Bytes(), &e)
	return rec.Code, e.Message
}

// ssoStart starts a browser sign-in for an admin and sends the browser to
// the identity provider.
func (s *Server) ssoStart(w http.ResponseWriter, r *http.Request) {
	var l struct {
		ID              string `json:"id"`
		VerificationURI string `json:"verification_uri"`
	}
	code, msg := s.apiJSON(http.MethodPost, "/v1/agent/login",
		map[string]string{"flow": "browser", "purpose": "admin", "redirect": ssoDone}, &l)
	if code != http.StatusCreated {
		s.signInForm(w, r, http.StatusBadRequest, "Single sign-on: "+msg)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: l.ID, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: 600})
	http.Redirect(w, r, l.VerificationURI, http.StatusSeeOther)
}

var ssoRefresh = template.Must(template.New("").Parse(`<!doctype html><meta charset="utf-8">` +
	`<meta http-equiv="refresh" content="0;url=/"><title>Signed in</title><p>Signed in as {{.}}. <a href="/">Continue</a></p>`))

// ssoFinish ends a console SSO sign-in: an admin-group member gets a
// console session with an admin session token.
func (s *Server) ssoFinish(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(ssoCookie)
	if err != nil || c.Value == "" || strings.ContainsAny(c.Value, "/?#") {
		s.signInForm(w, r, http.StatusUnauthorized, "Single sign-on: no sign-in in progress in this browser; start again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, MaxAge: -1})
	var st struct {
		Status     string `json:"status"`
		AdminToken string `json:"admin_token"`
		Identity   struct {
			Email string `json:"email"`
		} `json:"identity"`
	}
	code, msg := s.apiJSON(http.MethodPost, "/v1/agent/login/"+c.Value, nil, &st)
	if code != http.StatusOK || st.AdminToken == "" {
		if msg == "" {
			msg = "the sign-in is not finished"
		}
		s.signInForm(w, r, http.StatusForbidden, "Single sign-on: "+msg)
		return
	}
	setCookie(w, s.sess.create(st.AdminToken))
	// A page, not a redirect: the Strict session cookie is sent only on a
	// navigation this site starts, not on the end of the provider's.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	ssoRefresh.Execute(w, st.Identity.Email)
}
