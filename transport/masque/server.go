package masque

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	connectip "github.com/quic-go/connect-ip-go"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/yosida95/uritemplate/v3"
)

// Errors an Authenticate function wraps to choose the HTTP status of a refusal.
var (
	ErrUnauthorized = errors.New("masque: no valid credential") // 401
	ErrForbidden    = errors.New("masque: not allowed")         // 403
)

// Grant is what an authenticated agent gets: the capsules the edge sends when
// the session opens, and the owner's value for the session.
type Grant struct {
	// Addresses are assigned to the agent (ADDRESS_ASSIGN): a client's
	// overlay address; none for a connector.
	Addresses []netip.Prefix
	// Routes are advertised to the agent (ROUTE_ADVERTISEMENT): what it may
	// send to through the edge.
	Routes []netip.Prefix
	// Value is the owner's identity of the agent, handed to Open.
	Value any
	// Identity names the agent for ServerConfig.MaxSessions: a request
	// whose Identity already holds that many sessions is refused with 429.
	// Empty: unbounded.
	Identity string
}

// Handler is what the edge plugs into a Server.
type Handler interface {
	// Authenticate checks a CONNECT-IP request's credentials. An error
	// wrapping ErrUnauthorized or ErrForbidden refuses with 401 or 403; any
	// other error with 500.
	Authenticate(r *http.Request) (Grant, error)
	// Open is called once a session's capsules are exchanged, with the
	// routes the agent advertised; it returns the session's Receiver. The
	// session ends when Open returns an error.
	Open(s *Session, g Grant, agentRoutes []netip.Prefix) (Receiver, error)
	// Closed is called after the session's last Receive.
	Closed(s *Session, g Grant)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Listen is the UDP address to serve on; ":0" picks a free port.
	Listen string
	// Certificate is the server's TLS certificate (with its chain, so agents
	// can check the CA they pin).
	Certificate tls.Certificate
	// GetCertificate, when set, is used instead of Certificate on every
	// handshake, so the certificate can be renewed while the server runs.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Handler authenticates agents and takes their sessions; required.
	Handler Handler
	// MaxSessions bounds the sessions one Grant.Identity holds at once,
	// counted from its authentication to the session's end; 0 means
	// DefaultMaxSessions.
	MaxSessions int
	// Log is the server's logger; nil discards.
	Log *slog.Logger
}

// DefaultMaxSessions is how many sessions one identity may hold unless
// configured: an agent needs one, and a few more cover a reconnect while the
// old session times out.
const DefaultMaxSessions = 4

// idleConnTimeout closes a QUIC connection that holds no request for this
// long, whatever PINGs keep its QUIC layer alive: an agent's connection
// always holds its CONNECT-IP request.
const idleConnTimeout = 30 * time.Second

// requestTimeout closes a QUIC connection on which no request has
// authenticated this long after its handshake: a request whose headers
// never finish holds its connection open past idleConnTimeout (HTTP/3 sets
// no deadline on them), and credentials are checked only once they have.
// A variable for tests.
var requestTimeout = 10 * time.Second

// Server serves CONNECT-IP over HTTP/3 on one UDP socket.
type Server struct {
	cfg      ServerConfig
	log      *slog.Logger
	pc       net.PacketConn
	tr       *quic.Transport
	ln       *quic.EarlyListener
	h3       *http3.Server
	template *uritemplate.Template
	proxy    connectip.Proxy

	mu       sync.Mutex
	sessions map[*Session]struct{}
	held     map[string]int // sessions per Grant.Identity, authenticated or open
	closed   bool
	wg       sync.WaitGroup // Serve and the sessions
}

// NewServer opens the UDP socket and starts serving.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("masque: ServerConfig.Handler is required")
	}
	pc, err := net.ListenPacket("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("masque: listen on udp %s: %w", cfg.Listen, err)
	}
	return serveOn(cfg, pc)
}

// serveOn is NewServer on the socket pc, which it owns from then on.
func serveOn(cfg ServerConfig, pc net.PacketConn) (*Server, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      log.With("component", "masque"),
		pc:       pc,
		tr:       newTransport(pc),
		template: uritemplate.MustNew(Template),
		sessions: map[*Session]struct{}{},
		held:     map[string]int{},
	}
	if s.cfg.MaxSessions <= 0 {
		s.cfg.MaxSessions = DefaultMaxSessions
	}
	mux := http.NewServeMux()
	mux.HandleFunc(Path, s.serveConnectIP)
	tlsConf := &tls.Config{GetCertificate: cfg.GetCertificate, MinVersion: tls.VersionTLS13}
	if cfg.GetCertificate == nil {
		tlsConf.Certificates = []tls.Certificate{cfg.Certificate}
	}
	s.h3 = &http3.Server{
		Handler:         mux,
		TLSConfig:       http3.ConfigureTLSConfig(tlsConf),
		QUICConfig:      quicConfig(),
		EnableDatagrams: true,
		IdleTimeout:     idleConnTimeout,
		ConnContext:     s.connContext,
	}
	ln, err := s.tr.ListenEarly(s.h3.TLSConfig, quicConfig())
	if err != nil {
		s.tr.Close()
		pc.Close()
		return nil, fmt.Errorf("masque: listen for QUIC on udp %s: %w", pc.LocalAddr(), err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.h3.ServeListener(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) {
			s.log.Error("serving MASQUE stopped", "err", err)
		}
	}()
	return s, nil
}

// Port is the UDP port the server listens on.
func (s *Server) Port() uint16 { return uint16(s.pc.LocalAddr().(*net.UDPAddr).Port) }

// connContext is the server's http3.Server.ConnContext: it puts the
// connection's state into its requests' context, and closes the connection
// unless a request on it authenticates within requestTimeout.
func (s *Server) connContext(ctx context.Context, c *quic.Conn) context.Context {
	st := &connState{conn: c}
	t := time.AfterFunc(requestTimeout, func() {
		if !st.authed.Load() {
			s.log.Info("closed a MASQUE connection: no request authenticated on it", "remote", c.RemoteAddr(), "within", requestTimeout)
			c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeRequestIncomplete), "no authenticated request")
		}
	})
	context.AfterFunc(c.Context(), func() { t.Stop() })
	return context.WithValue(ctx, connKey{}, st)
}

// serveConnectIP authenticates one CONNECT-IP request and runs its session
// on the request's goroutine.
func (s *Server) serveConnectIP(w http.ResponseWriter, r *http.Request) {
	req, err := connectip.ParseProxyRequest(r, s.template)
	if err != nil {
		var pe *connectip.ProxyRequestParseError
		status := http.StatusBadRequest
		if errors.As(err, &pe) {
			status = pe.HTTPStatus
		}
		http.Error(w, err.Error(), status)
		return
	}
	st, _ := r.Context().Value(connKey{}).(*connState)
	if st == nil {
		s.log.Error("MASQUE request without its QUIC connection", "remote", r.RemoteAddr)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	g, err := s.cfg.Handler.Authenticate(r)
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrUnauthorized):
			status = http.StatusUnauthorized
		case errors.Is(err, ErrForbidden):
			status = http.StatusForbidden
		}
		s.log.Info("refused a MASQUE session", "remote", r.RemoteAddr, "status", status, "err", err)
		http.Error(w, http.StatusText(status), status)
		return
	}
	st.authed.Store(true)
	if !s.reserve(g.Identity) {
		s.log.Warn("refused a MASQUE session: its identity holds the most sessions allowed",
			"identity", g.Identity, "max_sessions", s.cfg.MaxSessions, "remote", r.RemoteAddr, "status", http.StatusTooManyRequests)
		w.Header().Set("Retry-After", strconv.Itoa(int(idleTimeout/time.Second)))
		http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
		return
	}
	defer s.release(g.Identity)
	conn, err := s.proxy.Proxy(w, req)
	if err != nil {
		s.log.Warn("opening a MASQUE session", "remote", r.RemoteAddr, "err", err)
		return
	}
	sess := newSession(conn, st.conn, s.log)
	if str, err := w.(http3.HTTPStreamer).HTTPStream(); err == nil {
		sess.prefix = datagramPrefix(str.StreamID())
	}
	if !s.track(sess) {
		sess.Close()
		return
	}
	defer s.untrack(sess)
	defer sess.Close()
	if err := s.run(r, sess, g); err != nil {
		s.log.Info("MASQUE session ended", "remote", r.RemoteAddr, "err", err)
	}
}

// run sends the grant's capsules, waits for the agent's routes, and serves
// the session until it ends.
func (s *Server) run(r *http.Request, sess *Session, g Grant) error {
	if len(g.Addresses) > 0 {
		if err := sess.conn.AssignAddresses(g.Addresses); err != nil {
			return fmt.Errorf("assign %v: %w", g.Addresses, err)
		}
	}
	if err := sess.conn.AdvertiseRoute(toRoutes(g.Routes)); err != nil {
		return fmt.Errorf("advertise routes: %w", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), capsuleTimeout)
	routes, err := sess.conn.Routes(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("wait for the agent's routes: %w", err)
	}
	recv, err := s.cfg.Handler.Open(sess, g, fromRoutes(routes))
	if err != nil {
		return err
	}
	defer s.cfg.Handler.Closed(sess, g)
	return sess.Serve(recv)
}

// reserve counts a session for identity unless it holds MaxSessions.
func (s *Server) reserve(identity string) bool {
	if identity == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[identity] >= s.cfg.MaxSessions {
		return false
	}
	s.held[identity]++
	return true
}

// release uncounts a session that reserve counted.
func (s *Server) release(identity string) {
	if identity == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[identity]--; s.held[identity] <= 0 {
		delete(s.held, identity)
	}
}

func (s *Server) track(sess *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(sess *Session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.wg.Done()
}

// Close ends every session and stops serving; it returns once every
// session's Closed has run.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for sess := range s.sessions {
		sess.Close()
	}
	s.mu.Unlock()
	err := s.h3.Close()
	s.ln.Close()
	s.tr.Close()
	s.pc.Close()
	s.wg.Wait()
	return err
}
