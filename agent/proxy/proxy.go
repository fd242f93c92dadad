package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Network opens connections on one path: the tunnel, or the host.
type Network interface {
	// DialTCP opens a TCP connection to dst.
	DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	// ListenUDP opens an unconnected UDP socket for WriteTo and ReadFrom
	// with any peer on this path.
	ListenUDP() (net.PacketConn, error)
}

// Router picks the path to a destination. The Networks it returns must be
// comparable (a UDP association keeps one socket per Network).
type Router interface {
	Route(dst netip.Addr) Network
}

// Server serves the proxies; its zero value is not usable: set Router.
type Server struct {
	// Router picks each destination's path.
	Router Router
	// Resolve turns a hostname into its addresses (agent/dns's
	// Stub.Lookup, with the client's DNS rules); nil means the host's
	// resolver. The first IPv4 address is dialed if there is one.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Log is the server's logger; nil discards.
	Log *slog.Logger
}

// dialTimeout bounds one outgoing dial.
const dialTimeout = 15 * time.Second

// serve accepts on l until it fails or ctx ends, handling each connection
// with handle; when it returns, every connection it accepted is closed and
// its handler gone.
func (s *Server) serve(ctx context.Context, l net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			handle(ctx, c)
		}()
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// resolve returns host as an address, resolving a name with Resolve (or
// the host's resolver) and taking its first IPv4 address if it has one.
func (s *Server) resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	lookup := s.Resolve
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: no address", host)
	}
	for _, a := range addrs { // IPv4 first: what most overlays and sites have
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	return addrs[0], nil
}

// dial resolves host and opens a TCP connection to host:port on its path.
func (s *Server) dial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	a, err := s.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	return s.Router.Route(a).DialTCP(ctx, netip.AddrPortFrom(a, port))
}

// splitHostPort is net.SplitHostPort with a numeric port.
func splitHostPort(hostport string) (string, uint16, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("address %q: bad port", hostport)
	}
	return host, uint16(port), nil
}

// closeWriter is a connection that can end its sending side alone.
type closeWriter interface{ CloseWrite() error }

// lingerer is a connection that can be reset on Close (SetLinger(0)), as a
// kernel TCP connection can.
type lingerer interface{ SetLinger(sec int) error }

// Splice copies a to b and b to a until both directions end, then closes
// both. A direction that ends cleanly (its source's EOF) is passed on as a
// half close where the connection has one. A direction that ends in an
// error (a reset, a failed write) aborts the splice instead: both
// connections are closed at once, each reset where it can be, so that
// neither peer takes an aborted stream for a complete one.
func Splice(a, b net.Conn) {
	var wg sync.WaitGroup
	var abortOnce sync.Once
	abort := func() {
		abortOnce.Do(func() {
			for _, c := range []net.Conn{a, b} {
				if l, ok := c.(lingerer); ok {
					l.SetLinger(0)
				}
				c.Close()
			}
		})
	}
	half := func(dst, src net.Conn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			abort()
			return
		}
		if cw, ok := dst.(closeWriter); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// Buffered returns c reading first what r (a reader of c) buffered, with
// c's half close: a connection handed on after a request was parsed.
func Buffered(c net.Conn, r *bufio.Reader) net.Conn { return &bufferedConn{Conn: c, r: r} }
