package api

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Limits: a request has 10 s for its headers and 30 s in all, a
// response 30 s, a keep-alive connection may sit idle for a minute, and the
// server holds at most 4096 connections (about 37 KB each while idle, so
// some 150 MB at the cap). Every agent holds one connection for its
// configuration long poll: raise MaxConns above the number of agents.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxConns          = 4096
)

// Limits bound what a client can hold of the API server without
// authenticating: how long it may take to send a request or read a
// response, how long a keep-alive connection may sit idle, and how many
// connections the server holds at once. Zero fields take the defaults.
// Long polls and streams (configuration watches, the change feed, flow log
// tails) set their own deadlines per response.
type Limits struct {
	// ReadHeaderTimeout bounds the TLS handshake and a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds a whole request, headers and body.
	ReadTimeout time.Duration
	// WriteTimeout bounds a response from the end of its request's headers;
	// a stream gets it afresh for each object it sends.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no request.
	IdleTimeout time.Duration
	// MaxConns caps the connections held at once; beyond it, new ones wait
	// in the kernel's accept queue, before any TLS work is spent on them.
	MaxConns int
}

// withDefaults fills the zero fields of l.
func (l Limits) withDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

// HTTPServer returns an http.Server that serves s over TLS with tlsConf and
// the server's Limits; serve it on a listener from s.Listener. Set ErrorLog
// and BaseContext on it as needed.
func (s *Server) HTTPServer(tlsConf *tls.Config) *http.Server {
	l := s.limits
	return &http.Server{
		Handler:           s,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
	}
}

// Listener wraps a TCP listener so that it holds at most the server's
// MaxConns connections: Accept waits for a held one to close, so a client
// beyond the cap costs neither a goroutine nor a TLS handshake. It logs when
// the cap is reached (at most once a minute).
func (s *Server) Listener(ln net.Listener) net.Listener {
	return &capListener{Listener: ln, slots: make(chan struct{}, s.limits.MaxConns), done: make(chan struct{}), log: s.log}
}

// capLogEvery spaces the warnings that the connection cap is reached.
const capLogEvery = time.Minute

// capListener is a counting listener: a slot per held connection.
type capListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	log       *slog.Logger
	lastLog   atomic.Int64 // unix nanoseconds of the last warning
}

// Accept waits for a free slot, then accepts a connection that frees it on
// Close.
func (l *capListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if now := time.Now().UnixNano(); now-l.lastLog.Load() >= int64(capLogEvery) {
			l.lastLog.Store(now)
			l.log.Warn("API connection cap reached; new connections wait", "max_conns", cap(l.slots))
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &capConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close closes the listener and ends a waiting Accept.
func (l *capListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// capConn frees its listener slot once, on its first Close.
type capConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close closes the connection and frees its slot.
func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
