package web

import (
	"net/http"
	"strings"
	"time"
)

// signInPage shows the sign-in form.
func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	s.signInForm(w, r, http.StatusOK, "")
}

func (s *Server) signInForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	var b strings.Builder
	err := s.pages["signin"].ExecuteTemplate(&b, "layout", view{Title: "Sign in", Edge: s.cfg.EdgeName,
		Data: map[string]string{"Next": safeNext(r.FormValue("next")), "Error": msg}})
	if err != nil {
		s.log.Error("console sign-in page", "err", err)
		http.Error(w, "console error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// signInDelay slows a wrong token down: guessing a 256-bit token is hopeless
// anyway, this only keeps a script from hammering the edge.
const signInDelay = 500 * time.Millisecond

// signIn checks the admin token and starts a session. The form carries no
// CSRF token (there is no session yet), so it must come from this origin.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !sameSite(r) {
		http.Error(w, "refused: a sign-in from another site", http.StatusForbidden)
		return
	}
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if tok == "" || !tokenMatches(tok, s.cfg.AdminTokenHash) {
		time.Sleep(signInDelay)
		s.signInForm(w, r, http.StatusUnauthorized, "That is not this edge's admin token.")
		return
	}
	setCookie(w, s.sess.create(tok))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// signOut ends the session.
func (s *Server) signOut(q *req) error {
	q.s.sess.drop(q.sess)
	clearCookie(q.w)
	http.Redirect(q.w, q.r, "/signin", http.StatusSeeOther)
	return nil
}

// safeNext is where to go after signing in: a path of this console only,
// never another site ("//host" or "/\host" included).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/v1/") {
		return "/"
	}
	return next
}
