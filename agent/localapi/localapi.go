// Package localapi is a running agent's local control socket: a Unix socket
// (SocketFile, mode 0600) in the agent's state directory that speaks HTTP/1.1
// with JSON bodies. Serve is the agent's side; Client is the CLI's, so that
// the CLI never reads or writes a running agent's files.
//
// Requests:
//
//	GET /status            the agent's Status
//	PUT /preferred         {"preferred": bool}; answers the new Status (connectors)
//	GET /vnets             the virtual networks the device may select (clients)
//	PUT /vnet              {"vnet": "NAME|ID"}; answers the selected VNet (clients)
//	POST /posture          collect the device's posture, report it to the edge
//	                       at once and answer it (clients, the Agent being a
//	                       PostureReporter)
//	POST /dial?addr=IP:PORT with "Connection: Upgrade" and "Upgrade: switchyard-tcp":
//	                       a TCP connection through the tunnel (userspace clients,
//	                       the Agent being a Dialer); "101 Switching Protocols"
//	                       turns the socket into the connection's byte stream
//
// An error answers with its HTTP status and {"kind", "code", "message"}, the
// fields of a model.Error, which Client returns as they were.
//
// Allowed imports: the standard library, control/model and agent/proxy
// (standard library only) for splicing a dial's stream.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/agent/proxy"
	"github.com/switchyard/switchyard/control/model"
)

// SocketFile is the control socket's name inside the state directory.
const SocketFile = "control.sock"

// Status is what an agent reports about its tunnel to the edge.
type Status struct {
	// Role is "connector" or "client".
	Role string `json:"role"`
	PID  int    `json:"pid"`
	// Healthy: the edge answered a heartbeat within the detect time.
	Healthy bool `json:"healthy"`
	// Active: the edge says this replica is its tunnel's active one.
	Active    bool      `json:"active"`
	Preferred bool      `json:"preferred"`
	Priority  int       `json:"priority"`
	Source    string    `json:"source,omitempty"` // the heartbeats' source address
	LastReply time.Time `json:"last_reply,omitzero"`
	RTT       string    `json:"rtt,omitempty"` // of the last answered heartbeat
	// Edge names the edge of a cluster that carries the agent's traffic,
	// and Standby the other edges it keeps sessions to that answer its
	// heartbeats; both empty with one edge.
	Edge    string   `json:"edge,omitempty"`
	Standby []string `json:"standby,omitempty"`
	// PathMTU is what path MTU discovery found on the WireGuard session
	// that carries the traffic; nil over MASQUE.
	PathMTU *PathMTU `json:"path_mtu,omitempty"`
	// SessionExpiresAt is when a client's user's sign-in ends; nil: none.
	SessionExpiresAt *time.Time `json:"session_expires_at,omitempty"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

// PathMTU is a session's discovered inner MTU in each direction.
type PathMTU = model.PathMTU

// PathMTU states.
const (
	PathMTUProbing   = model.PathMTUProbing
	PathMTUDone      = model.PathMTUDone
	PathMTUNotProbed = model.PathMTUNotProbed
)

// Agent is what the socket serves: the running agent. An error that is a
// *model.Error reaches the CLI with its kind and code.
type Agent interface {
	// Status returns the agent's current status.
	Status() Status
	// SetPreferred records whether this host holds its site's gateway
	// address (connector promote and demote).
	SetPreferred(preferred bool) (Status, error)
	// VNets lists the virtual networks the device may select.
	VNets(ctx context.Context) ([]model.VNet, error)
	// SelectVNet switches the device into the virtual network named or
	// identified by vnet.
	SelectVNet(ctx context.Context, vnet string) (model.VNet, error)
}

// Dialer is the optional side of an Agent that opens TCP connections
// through its tunnel (POST /dial): a userspace client's stack.
type Dialer interface {
	// DialTunnel opens a TCP connection to dst through the tunnel.
	DialTunnel(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
}

// PostureReporter is the optional side of an Agent that reports its
// device's posture (POST /posture): a client.
type PostureReporter interface {
	// ReportPosture collects the posture, reports it to the edge and
	// returns it as the edge stored it.
	ReportPosture(ctx context.Context) (model.Posture, error)
}

// DialProtocol is the Upgrade token of POST /dial.
const DialProtocol = "switchyard-tcp"

// preferredBody is the body of PUT /preferred.
type preferredBody struct {
	Preferred bool `json:"preferred"`
}

// errorBody is an error answer.
type errorBody struct {
	Kind    model.Kind `json:"kind"`
	Code    int        `json:"code"`
	Message string     `json:"message"`
}

// Server is a listening control socket.
type Server struct {
	path string
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	err  error
	once sync.Once
}

// Listen opens the control socket of the agent whose state directory is
// stateDir and serves a on it until Close. A socket left by an agent that
// died is replaced; one that an agent still answers on is not (two agents on
// one state directory would fight over its host state).
func Listen(stateDir string, a Agent) (*Server, error) {
	path := filepath.Join(stateDir, SocketFile)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("listen on control socket %s: another agent runs with state dir %s", path, stateDir)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket %s: %w", path, err)
	}
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, err
	}
	s := &Server{path: path, ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: Handler(a), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// listenPrivate listens on a Unix socket at path that only the owner may
// connect to: the socket is created inside a private temporary directory,
// chmodded to 0600 and then renamed into place, so it is never reachable
// with looser permissions.
func listenPrivate(path string) (net.Listener, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".control-")
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	inner := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", inner)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // the socket is renamed: Close removes it by its final name
	if err := os.Chmod(inner, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	if err := os.Rename(inner, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	return ln, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving, waits for the requests in flight (at most a few
// seconds) and removes the socket.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		<-s.done
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) && s.err == nil {
			s.err = fmt.Errorf("remove control socket %s: %w", s.path, err)
		}
	})
	return s.err
}

// Handler serves the requests of the package doc for a.
func Handler(a Agent) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("PUT /preferred", func(w http.ResponseWriter, r *http.Request) {
		var b preferredBody
		if err := decode(r, &b); err != nil {
			writeError(w, err)
			return
		}
		st, err := a.SetPreferred(b.Preferred)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /vnets", func(w http.ResponseWriter, r *http.Request) {
		v, err := a.VNets(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("PUT /vnet", func(w http.ResponseWriter, r *http.Request) {
		var b model.SelectVNet
		if err := decode(r, &b); err != nil {
			writeError(w, err)
			return
		}
		v, err := a.SelectVNet(r.Context(), b.VNet)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("POST /posture", func(w http.ResponseWriter, r *http.Request) {
		pr, ok := a.(PostureReporter)
		if !ok {
			writeError(w, model.Errorf(model.KindInvalid, "report the device posture: this agent is no client"))
			return
		}
		p, err := pr.ReportPosture(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST /dial", func(w http.ResponseWriter, r *http.Request) { dial(w, r, a) })
	return mux
}

// dial serves POST /dial: it opens the connection through the tunnel, then
// takes the socket over and splices the two until both ends are done.
func dial(w http.ResponseWriter, r *http.Request, a Agent) {
	d, ok := a.(Dialer)
	if !ok {
		writeError(w, model.Errorf(model.KindInvalid, "dial: this agent does not dial through its tunnel"))
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), DialProtocol) {
		writeError(w, model.Errorf(model.KindInvalid, "dial: the request needs Upgrade: %s", DialProtocol))
		return
	}
	dst, err := netip.ParseAddrPort(r.URL.Query().Get("addr"))
	if err != nil || dst.Port() == 0 {
		writeError(w, model.Errorf(model.KindInvalid, "dial: addr %q is not IP:PORT", r.URL.Query().Get("addr")))
		return
	}
	out, err := d.DialTunnel(r.Context(), dst)
	if err != nil {
		writeError(w, err)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		out.Close()
		writeError(w, fmt.Errorf("dial %s: take over the socket: %w", dst, err))
		return
	}
	c.SetDeadline(time.Time{}) // the server's read and write timeouts are for requests
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + DialProtocol + "\r\n\r\n"); err == nil {
		err = brw.Flush()
	}
	if err != nil {
		c.Close()
		out.Close()
		return
	}
	proxy.Splice(proxy.Buffered(c, brw.Reader), out)
}

// decode reads one JSON object of at most 64 KiB into v.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return model.Errorf(model.KindInvalid, "invalid JSON body: %v", err)
	}
	return nil
}

// statusOf maps an error kind to its HTTP status: the socket's one mapping.
func statusOf(k model.Kind) int {
	switch k {
	case model.KindInvalid:
		return http.StatusBadRequest
	case model.KindNotFound:
		return http.StatusNotFound
	case model.KindConflict:
		return http.StatusConflict
	case model.KindForbidden:
		return http.StatusForbidden
	case model.KindUnauthorized:
		return http.StatusUnauthorized
	case model.KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	e := model.AsError(err)
	writeJSON(w, statusOf(e.Kind), errorBody{Kind: e.Kind, Code: e.Code, Message: e.Message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
