package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/agent/proxy"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/routing/host"
	"github.com/switchyard/switchyard/tun"
)

// UserspaceConfig turns the client into its userspace mode: no TUN, no
// routes, no sysctls and no privileges. The device's overlay address lives
// in a userspace network stack (tun.Netstack); local proxies carry what the
// split tunnel sends through the tunnel into it, and dial the rest from the
// host; exposed ports let the sites connect to the device.
type UserspaceConfig struct {
	// SOCKS5 is the TCP address of the SOCKS5 proxy; empty turns it off.
	SOCKS5 string
	// HTTPProxy is the TCP address of the HTTP CONNECT proxy; empty turns it off.
	HTTPProxy string
	// Expose lists the ports of the overlay address that accept connections
	// from the sites, each delivered to a local address.
	Expose []Expose

	// ready, if set, is called once the stack is up (access tcp's own
	// session, which needs no proxy).
	ready func(*userspace)
}

// Expose is one --expose: connections to the device's overlay address on
// Port are forwarded to Local on the host.
type Expose struct {
	Port  uint16
	Local string // host:port
}

// ParseExpose parses PORT[:LOCALADDR], LOCALADDR being host:port
// (default 127.0.0.1:PORT).
func ParseExpose(s string) (Expose, error) {
	p, local, hasLocal := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return Expose{}, fmt.Errorf("expose %q: PORT must be a number from 1 to 65535 (PORT[:LOCALHOST:LOCALPORT])", s)
	}
	if !hasLocal {
		return Expose{Port: uint16(port), Local: net.JoinHostPort("127.0.0.1", p)}, nil
	}
	h, lp, err := net.SplitHostPort(local)
	if n, perr := strconv.ParseUint(lp, 10, 16); err != nil || h == "" || perr != nil || n == 0 {
		return Expose{}, fmt.Errorf("expose %q: LOCALADDR %q is not HOST:PORT (PORT[:LOCALHOST:LOCALPORT])", s, local)
	}
	return Expose{Port: uint16(port), Local: local}, nil
}

// userspace is the running userspace mode: the stack, the split decision
// and the proxies' and exposed ports' listeners.
type userspace struct {
	ns     *tun.Netstack
	split  *splitRouter
	srv    *proxy.Server
	socks  net.Listener
	httpc  net.Listener
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// listenProxies opens the proxies' listeners, before anything else, so that
// a port in use fails the start at once.
func listenProxies(cfg *UserspaceConfig) (socks, httpc net.Listener, err error) {
	if cfg.SOCKS5 == "" && cfg.HTTPProxy == "" && len(cfg.Expose) == 0 && cfg.ready == nil {
		return nil, nil, errors.New("userspace mode needs --socks5, --http-proxy or --expose")
	}
	if cfg.SOCKS5 != "" {
		if socks, err = net.Listen("tcp", cfg.SOCKS5); err != nil {
			return nil, nil, fmt.Errorf("listen for socks5 on %s: %w", cfg.SOCKS5, err)
		}
	}
	if cfg.HTTPProxy != "" {
		if httpc, err = net.Listen("tcp", cfg.HTTPProxy); err != nil {
			if socks != nil {
				socks.Close()
			}
			return nil, nil, fmt.Errorf("listen for the http proxy on %s: %w", cfg.HTTPProxy, err)
		}
	}
	return socks, httpc, nil
}

// startUserspace serves the proxies on socks and httpc (either may be nil),
// resolving their hostnames with resolve (the DNS stub's Lookup; nil: the
// host's resolver), and the exposed ports on ns, until close.
func startUserspace(ns *tun.Netstack, cfg *UserspaceConfig, socks, httpc net.Listener, resolve func(context.Context, string) ([]netip.Addr, error), log *slog.Logger) (*userspace, error) {
	u := &userspace{ns: ns, split: &splitRouter{tunnel: &stackNet{ns}, direct: &hostNet{}}, socks: socks, httpc: httpc, log: log}
	u.srv = &proxy.Server{Router: u.split, Resolve: resolve, Log: log.With("component", "proxy")}
	var exposed []net.Listener
	for _, e := range cfg.Expose {
		l, err := ns.ListenTCP(e.Port)
		if err != nil {
			for _, l := range exposed {
				l.Close()
			}
			return nil, fmt.Errorf("expose %d: %w", e.Port, err)
		}
		exposed = append(exposed, l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	u.cancel = cancel
	serve := func(what string, fn func(context.Context, net.Listener) error, l net.Listener) {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			if err := fn(ctx, l); err != nil {
				log.Error("serving "+what, "err", err)
			}
		}()
	}
	if socks != nil {
		serve("socks5", u.srv.ServeSOCKS5, socks)
		log.Info("socks5 proxy ready", "listen", socks.Addr().String())
	}
	if httpc != nil {
		serve("the http proxy", u.srv.ServeHTTPConnect, httpc)
		log.Info("http proxy ready", "listen", httpc.Addr().String())
	}
	for i, e := range cfg.Expose {
		serve("an exposed port", forwardTo(e.Local, log), exposed[i])
		log.Info("exposed", "overlay", netip.AddrPortFrom(ns.Addr(), e.Port).String(), "local", e.Local)
	}
	return u, nil
}

// close stops the proxies and the exposed ports and waits for their
// connections to end; the stack is the tunnel's to close.
func (u *userspace) close() {
	u.cancel()
	u.wg.Wait()
}

// dial opens a TCP connection to dst through the stack, for access tcp: a
// destination the split tunnel does not carry is refused (the edge would
// not route it), as is one the stack cannot reach within dialTimeout.
func (u *userspace) dial(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if u.split.Route(dst.Addr()) != u.split.tunnel {
		return nil, model.Errorf(model.KindInvalid, "dial %s: the split tunnel does not carry %s: connect to it directly", dst, dst.Addr())
	}
	ctx, cancel := context.WithTimeout(ctx, accessDialTimeout)
	defer cancel()
	c, err := u.ns.DialTCP(ctx, dst)
	if err != nil {
		return nil, model.Errorf(model.KindUnavailable, "dial %s through the tunnel: %v", dst, err)
	}
	return c, nil
}

// accessDialTimeout bounds one dial of access tcp through the stack.
const accessDialTimeout = 15 * time.Second

// forwardTo serves a listener of the stack by splicing each connection with
// a new one to local on the host.
func forwardTo(local string, log *slog.Logger) func(context.Context, net.Listener) error {
	return forward(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", local)
	}, local, log)
}

// forward serves a listener by splicing each connection it accepts with
// one that dial opens (to what, for messages), until ctx ends or the
// listener fails; each direction's end is passed on as a half close, and a
// reset as a reset (proxy.Splice). When it returns, the listener and every
// spliced connection are closed.
func forward(dial func(context.Context) (net.Conn, error), to string, log *slog.Logger) func(context.Context, net.Listener) error {
	return func(ctx context.Context, l net.Listener) error {
		stop := context.AfterFunc(ctx, func() { l.Close() })
		defer stop()
		defer l.Close()
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			c, err := l.Accept()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return nil
				}
				return fmt.Errorf("accept on %s: %w", l.Addr(), err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := dial(ctx)
				if err != nil {
					log.Warn("forwarding a connection", "from", c.RemoteAddr().String(), "to", to, "err", err)
					c.Close()
					return
				}
				done := make(chan struct{})
				go func() { // a stop ends the spliced connections too
					select {
					case <-ctx.Done():
						c.Close()
						out.Close()
					case <-done:
					}
				}()
				proxy.Splice(c, out)
				close(done)
			}()
		}
	}
}

// splitRouter is the split tunnel's decision for the proxies: a
// destination the tunnel carries (clientRoutes: the same prefixes the
// kernel mode routes into its TUN) goes through the stack, anything else
// (and always the host's loopback and link-local addresses) is dialed from
// the host.
type splitRouter struct {
	tunnel proxy.Network
	direct proxy.Network
	routes atomic.Pointer[[]netip.Prefix]
}

// set replaces the prefixes the tunnel carries.
func (r *splitRouter) set(routes []netip.Prefix) {
	routes = slices.Clone(routes)
	r.routes.Store(&routes)
}

// Route implements proxy.Router.
func (r *splitRouter) Route(dst netip.Addr) proxy.Network {
	dst = dst.Unmap()
	if dst.IsLoopback() || dst.IsLinkLocalUnicast() || dst.IsUnspecified() {
		return r.direct
	}
	if p := r.routes.Load(); p != nil {
		for _, pfx := range *p {
			if pfx.Contains(dst) {
				return r.tunnel
			}
		}
	}
	return r.direct
}

// stackNet is the tunnel's path: the userspace stack, from the overlay address.
type stackNet struct{ ns *tun.Netstack }

// DialTCP implements proxy.Network.
func (s *stackNet) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	return s.ns.DialTCP(ctx, dst)
}

// ListenUDP implements proxy.Network.
func (s *stackNet) ListenUDP() (net.PacketConn, error) { return s.ns.ListenUDP(0) }

// hostNet is the direct path: the host's own sockets.
type hostNet struct{}

// DialTCP implements proxy.Network.
func (hostNet) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", dst.String())
}

// ListenUDP implements proxy.Network.
func (hostNet) ListenUDP() (net.PacketConn, error) { return net.ListenUDP("udp", nil) }

// noHost is the host of the userspace mode: it changes nothing. Routes
// "go" into a link that does not exist on the host, and no sysctl is read
// or written.
type noHost struct{}

var _ host.Ops = noHost{}

// LinkIndex implements host.RouteOps.
func (noHost) LinkIndex(string) (int, error) { return 1, nil }

// RouteReplace implements host.RouteOps.
func (noHost) RouteReplace(host.Route) error { return nil }

// RouteDel implements host.RouteOps.
func (noHost) RouteDel(host.Route) error { return nil }

// RouteList implements host.RouteOps.
func (noHost) RouteList(int) ([]host.Route, error) { return nil, nil }

// GetSysctl implements host.SysctlOps.
func (noHost) GetSysctl(key string) (string, error) {
	return "", fmt.Errorf("read sysctl %s: %w", key, errors.ErrUnsupported)
}

// SetSysctl implements host.SysctlOps.
func (noHost) SetSysctl(key, _ string) error {
	return fmt.Errorf("write sysctl %s: %w", key, errors.ErrUnsupported)
}
