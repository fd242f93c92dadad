package web

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

//go:embed templates assets
var files embed.FS

// Config configures the console.
type Config struct {
	// API is the edge's API handler (every path under /v1), which the
	// console calls in process with the signed-in operator's token.
	API http.Handler
	// AdminTokenHash is the SHA-256 of the admin token, to check a sign-in.
	AdminTokenHash [32]byte
	// EdgeName names the edge serving the console in a cluster; empty alone.
	EdgeName string
	// Log receives failures the operator cannot act on; nil discards them.
	Log *slog.Logger
}

// Server serves the console. It implements http.Handler.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	sess   *sessions
	pages  map[string]*template.Template
	assets http.Handler
	log    *slog.Logger
	// samples are the forwarded-bytes counter over the last minutes, for
	// the overview's chart.
	samples sampler
}

// csp is the console's Content-Security-Policy: its own scripts, styles and
// images only, nothing inline, no other origin, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// New returns the console, its templates parsed.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, mux: http.NewServeMux(), sess: newSessions(), pages: map[string]*template.Template{},
		log: cfg.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.parse(); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(files, "assets")
	s.assets = http.StripPrefix("/assets/", http.FileServerFS(sub))
	s.routes()
	return s, nil
}

// parse parses every page under templates/ with the layout and partials.
func (s *Server) parse() error {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return err
	}
	shared, _ := fs.Glob(files, "templates/partials/*.html")
	for _, n := range names {
		if strings.HasSuffix(n, "/layout.html") {
			continue
		}
		t, err := template.New("").Funcs(funcs).ParseFS(files, append([]string{"templates/layout.html", n}, shared...)...)
		if err != nil {
			return fmt.Errorf("console template %s: %w", n, err)
		}
		s.pages[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = t
	}
	return nil
}

// ServeHTTP sets the security headers every answer carries, then serves r.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // not no-referrer: that makes a form post say Origin: null
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /assets/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache") // revalidated: assets change with the binary
		s.assets.ServeHTTP(w, r)
	})
	s.mux.HandleFunc("GET /signin", s.signInPage)
	s.mux.HandleFunc("POST /signin", s.signIn)
	s.mux.HandleFunc("GET /signin/sso", s.ssoStart)
	s.mux.HandleFunc("GET "+ssoDone, s.ssoFinish)
	s.page("POST /signout", s.signOut)
	s.page("GET /{$}", s.overviewPage)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.sess.get(r) == nil {
			s.refuse(w, r)
			return
		}
		http.Error(w, "no such page", http.StatusNotFound)
	})
	for _, register := range pageSets {
		register(s)
	}
}

// pageSets register the console's pages: each page file of the package adds
// its own in an init function, so that pages stay apart.
var pageSets []func(*Server)

// req is one signed-in request to a page or action.
type req struct {
	w    http.ResponseWriter
	r    *http.Request
	s    *Server
	sess *session
	// api calls the edge's API as the signed-in operator.
	api *client.Client
}

// page registers a handler for signed-in operators: a request without a
// live session is refused (sent to the sign-in page), and a change without
// the session's CSRF token or from another site is refused with 403.
func (s *Server) page(pattern string, fn func(*req) error) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		x := s.sess.get(r)
		if x == nil {
			s.refuse(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if !csrfOK(r, x) {
				http.Error(w, "refused: this change did not come from the console's own page (CSRF check)", http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		q := &req{w: w, r: r, s: s, sess: x, api: client.NewInProcess(s.cfg.API, x.token)}
		if err := fn(q); err != nil {
			s.log.Warn("console page", "path", r.URL.Path, "err", err)
			q.fail(err)
		}
	})
}

// refuse answers a request without a session: pages send the browser to
// the sign-in page (and back afterwards); htmx requests and changes get 401.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request) {
	next := "/signin?next=" + url.QueryEscape(r.URL.RequestURI())
	if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	w.Header().Set("HX-Redirect", next)
	http.Error(w, "signed out: sign in again", http.StatusUnauthorized)
}

// view is what every page's template gets.
type view struct {
	Title string
	Nav   string // the page's entry in the navigation
	CSRF  string
	Edge  string
	Data  any
}

// render writes page name, its content filled with data.
func (q *req) render(name, nav, title string, data any) error {
	return q.s.execute(q.w, name, "layout", view{Title: title, Nav: nav, CSRF: q.sess.csrf, Edge: q.s.cfg.EdgeName, Data: data})
}

// fragment writes one named template of page name (an htmx swap).
func (q *req) fragment(name, block string, data any) error {
	return q.s.execute(q.w, name, block, view{CSRF: q.sess.csrf, Edge: q.s.cfg.EdgeName, Data: data})
}

// execute renders into a buffer first, so that a template error answers
// 500 rather than half a page.
func (s *Server) execute(w http.ResponseWriter, name, block string, v view) error {
	t := s.pages[name]
	if t == nil {
		return fmt.Errorf("no console page %q", name)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, block, v); err != nil {
		return fmt.Errorf("render %s/%s: %w", name, block, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := w.Write([]byte(b.String()))
	return err
}

// fail shows err: inline for htmx (as a 200, which htmx swaps in, into the
// request's error box), as a page otherwise.
func (q *req) fail(err error) {
	msg, code := errorText(err)
	if q.r.Header.Get("HX-Request") != "" {
		q.w.Header().Set("HX-Retarget", "#errors")
		q.w.Header().Set("HX-Reswap", "innerHTML")
		q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(q.w, `<div class="error" role="alert">%s</div>`, template.HTMLEscapeString(msg))
		return
	}
	q.w.WriteHeader(code)
	if rerr := q.render("error", "", "Error", msg); rerr != nil {
		http.Error(q.w, msg, code)
	}
}

// errorText is what the operator reads of err, and the HTTP status of a
// page that shows it: the API's own message, with its code.
func errorText(err error) (string, int) {
	var e *model.Error
	if errors.As(err, &e) {
		status := map[model.Kind]int{model.KindInvalid: 400, model.KindNotFound: 404, model.KindConflict: 409,
			model.KindForbidden: 403, model.KindUnauthorized: 401, model.KindUnavailable: 503}[e.Kind]
		if status == 0 {
			status = 500
		}
		if e.Code != 0 {
			return fmt.Sprintf("%s (error %d)", e.Message, e.Code), status
		}
		return e.Message, status
	}
	return err.Error(), http.StatusInternalServerError
}
