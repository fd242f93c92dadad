package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// StubConfig configures a Stub.
type StubConfig struct {
	// Listen is the UDP and TCP address the stub answers on (port 0: any,
	// the same for both); an invalid one means no server, only Lookup.
	Listen netip.AddrPort
	// Tunnel opens the connections to the rules' servers, through the
	// tunnel (OverlayDialer in kernel mode, NetstackDialer in userspace
	// mode). Required.
	Tunnel Dialer
	// Host opens the connections to HostServers; nil means net.Dialer.
	Host Dialer
	// HostServers are the host's usual resolvers, which answer every query
	// no rule matches (Host.Upstreams).
	HostServers []netip.AddrPort
	// HostLookup resolves, for Lookup, a name no rule matches; nil means
	// net.DefaultResolver.
	HostLookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// OnAnswer, if set, sees every forwarded answer (and every Lookup's
	// addresses) before the application gets it: the question's name
	// (lower case, no trailing dot) and the answer's A and AAAA records.
	// The answer waits for it to return, so that what it does (the domain
	// split tunnel's routes) is in place before the first connection.
	OnAnswer func(name string, addrs []Answer)
	// Log is the stub's logger; nil discards.
	Log *slog.Logger
}

// Answer is one address of an answer, with its record's TTL (0 when the
// host's resolver gave no TTL, for Lookup).
type Answer struct {
	Addr netip.Addr
	TTL  time.Duration
}

// Stats counts the stub's queries (and Lookup's).
type Stats struct {
	// Tunnel counts the queries a rule sent through the tunnel.
	Tunnel uint64
	// Host counts the queries sent to the host's resolvers.
	Host uint64
	// Failed counts the queries that no server answered (SERVFAIL).
	Failed uint64
	// Refused counts the queries refused because they came from another
	// host (Stub.local).
	Refused uint64
}

// Stub is the client's stub resolver. Its methods are safe for concurrent
// use.
type Stub struct {
	cfg    StubConfig
	log    *slog.Logger
	tunnel forwarder
	host   forwarder
	table  atomic.Pointer[table]

	ntunnel, nhost, nfailed, nrefused atomic.Uint64

	ctx    context.Context // ends with Close: every forwarding in flight
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and the Add of wg
	closed bool
	wg     sync.WaitGroup
	srvs   []*dns.Server
	addr   netip.AddrPort
}

// NewStub starts a stub on cfg.Listen with no rules (Set gives them):
// every query goes to the host's resolvers until then.
func NewStub(cfg StubConfig) (*Stub, error) {
	if cfg.Tunnel == nil {
		return nil, errors.New("dns stub: no tunnel dialer")
	}
	hostDial := cfg.Host
	if hostDial == nil {
		var d net.Dialer
		hostDial = d.DialContext
	}
	cfg.HostServers = slices.Clone(cfg.HostServers)
	s := &Stub{
		cfg:    cfg,
		log:    cfg.Log,
		tunnel: forwarder{dial: cfg.Tunnel, serverTimeout: ServerTimeout, queryTimeout: QueryTimeout},
		host:   forwarder{dial: hostDial, serverTimeout: ServerTimeout, queryTimeout: QueryTimeout},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.Listen.IsValid() {
		if err := s.listen(cfg.Listen); err != nil {
			s.cancel()
			return nil, err
		}
		s.log.Info("dns stub listening", "addr", s.addr.String(), "host_servers", fmt.Sprint(cfg.HostServers))
	}
	return s, nil
}

// listen opens the UDP socket and the TCP listener on one port and serves them.
func (s *Stub) listen(addr netip.AddrPort) error {
	var pc net.PacketConn
	var l net.Listener
	var err error
	for range 10 { // with port 0, TCP may find the UDP port taken: try another
		if pc, err = net.ListenPacket("udp", addr.String()); err != nil {
			return fmt.Errorf("dns stub: listen udp %s: %w", addr, err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		if l, err = net.Listen("tcp", netip.AddrPortFrom(addr.Addr(), port).String()); err == nil {
			s.addr = netip.AddrPortFrom(addr.Addr(), port)
			break
		}
		pc.Close()
		if addr.Port() != 0 {
			return fmt.Errorf("dns stub: listen tcp %s: %w", addr, err)
		}
	}
	if err != nil {
		return fmt.Errorf("dns stub: listen tcp %s: %w", addr, err)
	}
	s.srvs = []*dns.Server{
		{PacketConn: pc, Handler: s, UDPSize: dns.MaxMsgSize},
		{Listener: l, Handler: s},
	}
	started := make(chan struct{}, len(s.srvs))
	for _, srv := range s.srvs {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		s.wg.Go(func() {
			if err := srv.ActivateAndServe(); err != nil && s.ctx.Err() == nil {
				s.log.Error("dns stub stopped serving", "err", err)
			}
		})
	}
	for range s.srvs {
		<-started
	}
	return nil
}

// Addr is where the stub answers (its port chosen when Listen's was 0).
func (s *Stub) Addr() netip.AddrPort { return s.addr }

// Set replaces the rules with c's, at once for every later query. A c
// with a bad rule is refused whole and the rules stay as they were.
func (s *Stub) Set(c Config) error {
	t, err := newTable(c)
	if err != nil {
		return fmt.Errorf("dns stub: set rules: %w", err)
	}
	s.table.Store(t)
	s.log.Info("dns rules set", "domains", fmt.Sprint(c.Domains()))
	return nil
}

// Stats returns the stub's counters.
func (s *Stub) Stats() Stats {
	return Stats{Tunnel: s.ntunnel.Load(), Host: s.nhost.Load(), Failed: s.nfailed.Load(), Refused: s.nrefused.Load()}
}

// Close stops the servers, ends the queries in flight and waits for them.
func (s *Stub) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	var errs []error
	for _, srv := range s.srvs {
		if err := srv.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dns stub: close %s: %w", s.addr, err)
	}
	return nil
}

// enter registers one query in flight; false means the stub is closed.
func (s *Stub) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// ServeDNS implements dns.Handler: it answers req with the answer of the
// servers its name's rule names (or the host's), SERVFAIL when none
// answers, keeping req's id and EDNS0 options, truncated to what a UDP
// client can take.
func (s *Stub) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if !s.enter() {
		return
	}
	defer s.wg.Done()
	network := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	var r *dns.Msg
	if s.local(w.RemoteAddr()) {
		r = s.resolve(s.ctx, req, network)
	} else {
		s.nrefused.Add(1)
		r = new(dns.Msg).SetRcode(req, dns.RcodeRefused)
	}
	if network == "udp" {
		r.Truncate(udpSize(req))
	}
	if err := w.WriteMsg(r); err != nil && s.log.Enabled(s.ctx, slog.LevelDebug) {
		s.log.LogAttrs(s.ctx, slog.LevelDebug, "dns stub: write answer", slog.String("to", w.RemoteAddr().String()), slog.Any("err", err))
	}
}

// local reports whether a query from from was sent by this host: from
// loopback or from the stub's own address (where a stub on the overlay IP
// sees the host's own queries come from). Anyone else, a site's host
// reaching the overlay IP through the tunnel among them, is refused: the
// stub is no open resolver into the host's network.
func (s *Stub) local(from net.Addr) bool {
	var ip netip.Addr
	switch a := from.(type) {
	case *net.UDPAddr:
		ip = a.AddrPort().Addr()
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	}
	ip = ip.Unmap()
	return ip.IsLoopback() || ip == s.addr.Addr().Unmap()
}

// resolve returns the answer to req: forwarded to its rule's servers or
// the host's, or made here (SERVFAIL when nobody answered, FORMERR or
// NOTIMP for what the stub does not forward).
func (s *Stub) resolve(ctx context.Context, req *dns.Msg, network string) *dns.Msg {
	switch {
	case req.Opcode != dns.OpcodeQuery:
		return new(dns.Msg).SetRcode(req, dns.RcodeNotImplemented)
	case len(req.Question) != 1:
		return new(dns.Msg).SetRcodeFormatError(req)
	}
	name := req.Question[0].Name
	f, servers, class := &s.host, s.cfg.HostServers, &s.nhost
	domain, rs, ok := s.table.Load().match(name)
	if ok && req.Question[0].Qclass == dns.ClassINET {
		f, servers, class = &s.tunnel, rs, &s.ntunnel
	}
	class.Add(1)
	r, err := f.forward(ctx, req, network, servers)
	if err != nil {
		s.nfailed.Add(1)
		s.log.Warn("dns query failed", "name", name, "rule", domain, "servers", fmt.Sprint(servers), "err", err)
		return servfail(req)
	}
	s.answered(name, r)
	return r
}

// answered hands r's addresses to OnAnswer.
func (s *Stub) answered(name string, r *dns.Msg) {
	if s.cfg.OnAnswer == nil || r.Rcode != dns.RcodeSuccess {
		return
	}
	var addrs []Answer
	for _, rr := range r.Answer {
		ttl := time.Duration(rr.Header().Ttl) * time.Second
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
				addrs = append(addrs, Answer{Addr: a, TTL: ttl})
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA); ok {
				addrs = append(addrs, Answer{Addr: a.Unmap(), TTL: ttl})
			}
		}
	}
	if len(addrs) > 0 {
		s.cfg.OnAnswer(canonical(name), addrs)
	}
}

// canonical is name in lower case without the trailing dot.
func canonical(name string) string { return strings.TrimSuffix(strings.ToLower(name), ".") }

// servfail is the stub's own SERVFAIL answer to req, with an OPT record
// when req had one.
func servfail(req *dns.Msg) *dns.Msg {
	r := new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
	if opt := req.IsEdns0(); opt != nil {
		r.SetEdns0(opt.UDPSize(), opt.Do())
	}
	return r
}

// udpSize is the largest UDP answer req's sender takes.
func udpSize(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil && opt.UDPSize() > dns.MinMsgSize {
		return int(opt.UDPSize())
	}
	return dns.MinMsgSize
}
