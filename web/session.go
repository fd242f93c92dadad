package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// cookieName is the session cookie's name; the __Host- prefix makes the
// browser insist on Secure, Path=/ and no Domain.
const cookieName = "__Host-switchyard-session"

// Session lifetimes: a session ends after idle without a request, and in
// any case after max since sign-in.
const (
	sessionIdle = 2 * time.Hour
	sessionMax  = 12 * time.Hour
	maxSessions = 1024 // beyond this, the oldest session is signed out
)

// session is one signed-in browser.
type session struct {
	id      string
	token   string // the admin token the operator signed in with
	csrf    string
	created time.Time
	seen    time.Time
}

// sessions holds the signed-in browsers.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	now  func() time.Time
}

func newSessions() *sessions {
	return &sessions{byID: map[string]*session{}, now: time.Now}
}

// randomID returns 32 random bytes, base64url-encoded.
func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create signs a browser in with token.
func (s *sessions) create(token string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.byID) >= maxSessions {
		var oldest *session
		for _, x := range s.byID {
			if oldest == nil || x.created.Before(oldest.created) {
				oldest = x
			}
		}
		delete(s.byID, oldest.id)
	}
	x := &session{id: randomID(), token: token, csrf: randomID(), created: now, seen: now}
	s.byID[x.id] = x
	return x
}

// get returns the live session of r's cookie, or nil.
func (s *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.byID[c.Value]
	if x == nil {
		return nil
	}
	now := s.now()
	if now.Sub(x.seen) > sessionIdle || now.Sub(x.created) > sessionMax {
		delete(s.byID, x.id)
		return nil
	}
	x.seen = now
	return x
}

// drop signs a session out.
func (s *sessions) drop(x *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, x.id)
}

// setCookie hands the browser its session id.
func setCookie(w http.ResponseWriter, x *session) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: x.id, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionMax / time.Second)})
}

// clearCookie tells the browser to forget its session id.
func clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// tokenMatches reports whether token is the admin token whose SHA-256 is hash.
func tokenMatches(token string, hash [32]byte) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], hash[:]) == 1
}

// csrfOK reports whether a change request r is the console's own: it carries
// the session's CSRF token and does not come from another site.
func csrfOK(r *http.Request, x *session) bool {
	if !sameSite(r) {
		return false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(x.csrf)) == 1
}

// sameSite reports whether the browser says r comes from this origin (or
// says nothing, as non-browser clients do).
func sameSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "https://"+r.Host {
		return false
	}
	return true
}

// live reports whether x is still signed in, without counting this as use:
// a long-lived stream checks it to end when its session does.
func (s *sessions) live(x *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[x.id] == x && s.now().Sub(x.created) <= sessionMax
}
