package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/model"
)

// AccessConfig configures access tcp: a local TCP port, or stdin and
// stdout, forwarded to one destination through the tunnel.
type AccessConfig struct {
	// StateDir is the client's state directory: its running userspace
	// client carries the connections, else the enrolled device's
	// credential starts a session of access tcp's own.
	StateDir string
	// Destination is HOST:PORT in a site; a name is resolved on the host.
	Destination string
	// Listener is the local TCP address to accept on; empty with Stdio.
	Listener string
	// Stdio carries one connection on Stdin and Stdout instead (ssh's
	// ProxyCommand); it ends when the destination closes.
	Stdio  bool
	Stdin  io.Reader
	Stdout io.Writer
	// Protocol, Edges and Version are for a session of its own, as in
	// ClientConfig.
	Protocol Protocol
	Edges    int
	Version  string
	// Listening, if set, is called with the listener's address once
	// connections are forwarded (tests).
	Listening func(net.Addr)
	// Log is the logger; nil discards.
	Log *slog.Logger
	// Seams replace the operating system in tests (a session of its own).
	Seams
}

// ParseDestination parses access tcp's HOST:PORT: a host (an IP address or
// a name) and a port from 1 to 65535.
func ParseDestination(s string) (host string, port uint16, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("destination %q is not HOST:PORT (e.g. 10.1.2.3:22 or [2001:db8::1]:22)", s)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("destination %q: port %q is not a number from 1 to 65535", s, p)
	}
	if h == "" || strings.ContainsAny(h, " /") {
		return "", 0, fmt.Errorf("destination %q: host %q is not an IP address or a name", s, h)
	}
	return h, uint16(n), nil
}

// dialFunc opens a connection through the tunnel.
type dialFunc func(ctx context.Context, dst netip.AddrPort) (net.Conn, error)

// RunAccess forwards until ctx ends (or, with Stdio, the connection ends):
// through the userspace client running with cfg.StateDir, or, when none
// runs, through a userspace session of its own with the state dir's
// enrolled device, which lasts as long as RunAccess (and serves the state
// dir's control socket meanwhile, so that other access commands use it).
func RunAccess(ctx context.Context, cfg AccessConfig) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, port, err := ParseDestination(cfg.Destination)
	if err != nil {
		return fmt.Errorf("access tcp: %w", model.Errorf(model.KindInvalid, "%v", err))
	}
	if cfg.Stdio == (cfg.Listener != "") {
		return fmt.Errorf("access tcp: %w", model.Errorf(model.KindInvalid, "give one of --listener and --stdio"))
	}
	var l net.Listener
	if !cfg.Stdio {
		if l, err = net.Listen("tcp", cfg.Listener); err != nil {
			return fmt.Errorf("access tcp: listen on %s: %w", cfg.Listener, err)
		}
		defer l.Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dial, session, err := accessDialer(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("access tcp: %w", err)
	}
	var sessionErr error // a session of its own that ended (revoked) ends the access
	sessionDone := make(chan struct{})
	go func() {
		defer close(sessionDone)
		if session != nil {
			if err := <-session; err != nil && !errors.Is(err, context.Canceled) {
				sessionErr = credentialErr(cfg.StateDir, err)
			}
			cancel()
		}
	}()
	end := func(err error) error { // waits for the session, after a stop
		cancel()
		<-sessionDone
		if sessionErr != nil {
			return fmt.Errorf("access tcp: %w", sessionErr)
		}
		return err
	}
	to := net.JoinHostPort(host, strconv.Itoa(int(port)))
	open := func(ctx context.Context) (net.Conn, error) {
		dst, err := resolveDestination(ctx, host, port)
		if err != nil {
			return nil, err
		}
		return dial(ctx, dst)
	}
	if cfg.Stdio {
		c, err := open(ctx)
		if err != nil {
			return end(fmt.Errorf("access tcp: %w", err))
		}
		return end(pipeStdio(ctx, cfg.Stdin, cfg.Stdout, c))
	}
	log.Info("forwarding", "listen", l.Addr().String(), "destination", to)
	if cfg.Listening != nil {
		cfg.Listening(l.Addr())
	}
	if err := forward(open, to, log)(ctx, l); err != nil {
		return end(fmt.Errorf("access tcp: %w", err))
	}
	return end(nil)
}

// accessDialer returns the dial through the running userspace client, or
// starts a session of its own and returns the channel of its end.
func accessDialer(ctx context.Context, cfg AccessConfig, log *slog.Logger) (dialFunc, <-chan error, error) {
	lc := localapi.NewClient(roleClient, cfg.StateDir)
	st, err := lc.Status(ctx)
	if err == nil {
		if st.Role != roleClient {
			return nil, nil, model.Errorf(model.KindInvalid, "the agent running with state dir %s is a %s, not a client", cfg.StateDir, st.Role)
		}
		log.Info("through the running client", "state_dir", cfg.StateDir, "pid", st.PID)
		return lc.Dial, nil, nil
	}
	if !errors.Is(err, localapi.ErrNotRunning) {
		return nil, nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, credentialFile)); err != nil {
		return nil, nil, model.Errorf(model.KindNotFound,
			"no enrolled device in state dir %s (and no client running with it): enroll first with switchyard client up --token TOKEN --state-dir %s", cfg.StateDir, cfg.StateDir)
	}
	log.Info("no client running: starting a userspace session", "state_dir", cfg.StateDir)
	ready := make(chan *userspace, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- RunClient(ctx, ClientConfig{
			StateDir: cfg.StateDir, Protocol: cfg.Protocol, Edges: cfg.Edges, Version: cfg.Version,
			Userspace: &UserspaceConfig{ready: func(us *userspace) { ready <- us }},
			Log:       log, Seams: cfg.Seams,
		})
	}()
	select {
	case us := <-ready:
		return us.dial, errc, nil
	case err := <-errc:
		if err == nil {
			err = ctx.Err()
		}
		return nil, nil, credentialErr(cfg.StateDir, err)
	}
}

// credentialErr says so when the edge refused the device's credential.
func credentialErr(stateDir string, err error) error {
	var e *model.Error
	if errors.As(err, &e) && (e.Kind == model.KindUnauthorized || e.Kind == model.KindForbidden) {
		return fmt.Errorf("the edge refused the device credential in %s (revoked or deleted? switchyard device list --show-revoked): %w", stateDir, err)
	}
	return err
}

// resolveDestination returns host:port as an address, resolving a name on
// the host (IPv4 first).
func resolveDestination(ctx context.Context, host string, port uint16) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), port), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %v", host, cmpErr(err, "no address"))
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return netip.AddrPortFrom(a.Unmap(), port), nil
		}
	}
	return netip.AddrPortFrom(addrs[0], port), nil
}

func cmpErr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}

// pipeStdio carries c on in and out: in's end is passed on as a half
// close, and the copy ends when c's other side closes (or ctx ends). The
// goroutine that reads in may stay blocked in a read of a terminal or pipe
// that never ends; the process's exit ends it.
func pipeStdio(ctx context.Context, in io.Reader, out io.Writer, c net.Conn) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	go func() {
		io.Copy(c, in)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			c.Close()
		}
	}()
	if _, err := io.Copy(out, c); err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("access tcp: %w", err)
	}
	return nil
}
