package wireguard

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/ratelimiter"
)

// Errors returned by Send and the peer directory.
var (
	ErrClosed         = errors.New("wireguard endpoint closed")
	ErrNoSession      = errors.New("wireguard session has no usable key")
	ErrNoEndpoint     = errors.New("wireguard session has no known endpoint")
	ErrSessionRemoved = errors.New("wireguard session removed")
	ErrNoHeadroom     = errors.New("wireguard send offset smaller than Headroom")
	ErrPacketTooLarge = errors.New("wireguard packet larger than MaxPacketSize")
)

// Stats counts the endpoint's events; every dropped message is counted once.
type Stats struct {
	DroppedMalformed    uint64 `json:"dropped_malformed"`     // bad type, size, header or inner IP header
	DroppedUnknownIndex uint64 `json:"dropped_unknown_index"` // receiver index not in the session table
	DroppedAuth         uint64 `json:"dropped_auth"`          // failed decryption or handshake authentication
	DroppedReplay       uint64 `json:"dropped_replay"`        // counter or timestamp already seen
	DroppedExpired      uint64 `json:"dropped_expired"`       // key too old or used too often
	DroppedMAC1         uint64 `json:"dropped_mac1"`          // handshake with a bad mac1
	DroppedUnauthorized uint64 `json:"dropped_unauthorized"`  // handshake from a key not in the directory
	DroppedRateLimited  uint64 `json:"dropped_rate_limited"`  // handshake refused by the rate limiters
	DroppedQueueFull    uint64 `json:"dropped_queue_full"`    // handshake dropped because the queue was full
	DroppedNoSession    uint64 `json:"dropped_no_session"`    // packets Send dropped for want of a key or endpoint
	CookieRepliesSent   uint64 `json:"cookie_replies_sent"`   // handshakes answered with a cookie under load
	HandshakesInitiated uint64 `json:"handshakes_initiated"`  // initiations sent
	HandshakesCompleted uint64 `json:"handshakes_completed"`  // handshakes completed, either role
	SendErrors          uint64 `json:"send_errors"`           // failed bind sends
	ProbesAnswered      uint64 `json:"probes_answered"`       // path MTU probes answered
	DroppedProbe        uint64 `json:"dropped_probe"`         // probes unanswered: unknown key, bad MAC, no endpoint, rate limit
}

type counters struct {
	malformed, unknownIndex, auth, replay, expired, mac1    atomic.Uint64
	unauthorized, rateLimited, queueFull, noSession, cookie atomic.Uint64
	hsInitiated, hsCompleted, sendErrors                    atomic.Uint64
	probesAnswered, probeDropped                            atomic.Uint64
}

// Endpoint is a WireGuard endpoint that terminates sessions for many peers
// on one UDP port.
type Endpoint struct {
	log   *slog.Logger
	t     Timers
	priv  PrivateKey
	pub   PublicKey
	key   *ecdh.PrivateKey // priv, for one-multiplication DH
	bind  conn.Bind
	port  uint16
	recv  Receiver
	epoch time.Time
	index *indexTable

	cookies   cookieChecker
	limiter   ratelimiter.Ratelimiter
	batchSize int
	workers   int
	rxRoom    int // Config.ReceiveHeadroom
	onPathMTU func(s *Session, mtu int)

	peersMu sync.RWMutex
	peers   map[PublicKey]*Session

	hsQueue  chan *hsJob
	hsPool   sync.Pool
	kicks    atomic.Pointer[Session] // sessions for the timer goroutine, linked by kickNext
	kickWake chan struct{}           // wakes the timer goroutine after a kick
	crypto   chan *cryptoJob
	spare    spareCPU // whether a large batch's crypto fans out to the workers
	txPool   sync.Pool

	underLoadUntil atomic.Int64
	forceUnderLoad atomic.Bool // tests
	stats          counters
	timerRuns      atomic.Uint64 // sessions the timer goroutine looked at

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup // receive loops, handshake workers, timers
	cryptoWG  sync.WaitGroup // crypto workers, stopped last
	// sendMu is held shared by every Send so that Close can wait for them
	// before it stops the crypto workers they may be using.
	sendMu sync.RWMutex
}

// New opens cfg.Bind and starts the endpoint's goroutines.
func New(cfg Config) (*Endpoint, error) {
	if cfg.PrivateKey.IsZero() {
		return nil, errors.New("wireguard.New: private key is zero")
	}
	if cfg.Receiver == nil {
		return nil, errors.New("wireguard.New: receiver is nil")
	}
	if cfg.ReceiveHeadroom < 0 || cfg.ReceiveHeadroom > maxFraming {
		return nil, fmt.Errorf("wireguard.New: receive headroom %d outside 0..%d", cfg.ReceiveHeadroom, maxFraming)
	}
	e := &Endpoint{
		log:       cfg.Logger,
		t:         cfg.Timers.withDefaults(),
		priv:      cfg.PrivateKey,
		bind:      cfg.Bind,
		recv:      cfg.Receiver,
		epoch:     time.Now(),
		index:     newIndexTable(cfg.MaxSessions),
		workers:   cfg.workers(),
		peers:     make(map[PublicKey]*Session),
		hsQueue:   make(chan *hsJob, handshakeQueueSize),
		kickWake:  make(chan struct{}, 1),
		crypto:    make(chan *cryptoJob, 64),
		closed:    make(chan struct{}),
		rxRoom:    cfg.ReceiveHeadroom,
		onPathMTU: cfg.OnPathMTU,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "wireguard")
	e.priv.clamp()
	e.key = ecdhKey(&e.priv)
	e.pub = PublicKey(e.key.PublicKey().Bytes())
	e.cookies.init(e.pub)
	if e.bind == nil {
		FragmentOuter() // see fragment_linux.go
		e.bind = defaultBind()
	}
	e.batchSize = e.bind.BatchSize()
	e.hsPool.New = func() any { return new(hsJob) }
	e.txPool.New = func() any { return e.newTxBatch() }

	fns, port, err := e.bind.Open(cfg.ListenPort)
	if err != nil {
		return nil, fmt.Errorf("wireguard.New: open bind on port %d: %w", cfg.ListenPort, err)
	}
	e.port = port
	e.spare.init(newCPUSource())
	e.limiter.Init()
	for range e.workers {
		e.cryptoWG.Add(1)
		go e.cryptoWorker()
		e.goFn(e.handshakeWorker)
	}
	for _, fn := range fns {
		e.goFn(func() { e.receiveLoop(fn) })
	}
	e.goFn(e.timerLoop)
	e.log.Info("endpoint up", "port", port, "public_key", e.pub.String(), "receive_funcs", len(fns))
	return e, nil
}

func (e *Endpoint) goFn(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// Close shuts the endpoint down and waits for all of its goroutines. Send
// calls that are under way finish first; later ones return ErrClosed.
func (e *Endpoint) Close() error {
	var err error
	e.closeOnce.Do(func() {
		close(e.closed)
		if cerr := e.bind.Close(); cerr != nil {
			err = fmt.Errorf("wireguard: close bind: %w", cerr)
		}
		e.wg.Wait()
		e.sendMu.Lock()
		close(e.crypto) // no Send can post jobs any more
		e.sendMu.Unlock()
		e.cryptoWG.Wait()
		e.limiter.Close()
		e.spare.close()
		e.peersMu.Lock()
		for _, s := range e.peers {
			s.removed.Store(true)
			s.mu.Lock()
			s.dropKeypairsLocked()
			s.mu.Unlock()
		}
		clear(e.peers)
		e.peersMu.Unlock()
	})
	return err
}

func (e *Endpoint) isClosed() bool {
	select {
	case <-e.closed:
		return true
	default:
		return false
	}
}

// PublicKey returns the endpoint's public key.
func (e *Endpoint) PublicKey() PublicKey { return e.pub }

// Port returns the UDP port the endpoint listens on.
func (e *Endpoint) Port() uint16 { return e.port }

// Stats returns a snapshot of the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	c := &e.stats
	return Stats{
		DroppedMalformed: c.malformed.Load(), DroppedUnknownIndex: c.unknownIndex.Load(),
		DroppedAuth: c.auth.Load(), DroppedReplay: c.replay.Load(), DroppedExpired: c.expired.Load(),
		DroppedMAC1: c.mac1.Load(), DroppedUnauthorized: c.unauthorized.Load(),
		DroppedRateLimited: c.rateLimited.Load(), DroppedQueueFull: c.queueFull.Load(),
		DroppedNoSession: c.noSession.Load(), CookieRepliesSent: c.cookie.Load(),
		HandshakesInitiated: c.hsInitiated.Load(), HandshakesCompleted: c.hsCompleted.Load(),
		SendErrors: c.sendErrors.Load(), ProbesAnswered: c.probesAnswered.Load(), DroppedProbe: c.probeDropped.Load(),
	}
}

// now is the endpoint's monotonic clock in nanoseconds.
func (e *Endpoint) now() int64 { return int64(time.Since(e.epoch)) }

func (e *Endpoint) keypairUsable(kp *keypair, now int64) bool {
	return now-kp.created < int64(e.t.RejectAfterTime) && kp.sendNonce.Load() < e.t.RejectAfterMessages
}

// PeerConfig authorizes one peer.
type PeerConfig struct {
	PublicKey    PublicKey    // the peer's identity
	PresharedKey PresharedKey // zero means none
	// Endpoint is where to send initiations before the peer has sent
	// anything; it is optional for peers that always initiate.
	Endpoint netip.AddrPort
	// PersistentKeepalive sends a keepalive after this much silence; 0 is off.
	PersistentKeepalive time.Duration
	// Value is opaque to the endpoint; Session.Value returns it.
	Value any
	// Framing is the size of a header the peer puts in front of every IP
	// packet it sends (the edge's trunk header): the endpoint checks the IP
	// packet after it and delivers the header in front of Packet.Off. The
	// same holds the other way: what the endpoint sends such a peer must
	// start with the header. 0 for a plain WireGuard peer.
	Framing int
}

// ResolveEndpoint resolves a peer's endpoint, HOST:PORT, to an address
// (an IPv4 one unmapped), as PeerConfig.Endpoint and wireguard-go's UAPI
// endpoint= take it.
func ResolveEndpoint(hostPort string) (netip.AddrPort, error) {
	addr, err := net.ResolveUDPAddr("udp", hostPort)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := addr.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// AddPeer authorizes a peer, or updates it if it is already authorized, and
// returns its session. The peer can complete a handshake at once.
func (e *Endpoint) AddPeer(pc PeerConfig) (*Session, error) {
	if pc.PublicKey == e.pub {
		return nil, errors.New("wireguard: add peer: key is the endpoint's own")
	}
	var dst conn.Endpoint
	if pc.Endpoint.IsValid() {
		var err error
		if dst, err = e.bind.ParseEndpoint(pc.Endpoint.String()); err != nil {
			return nil, fmt.Errorf("wireguard: add peer %s: parse endpoint %s: %w", pc.PublicKey, pc.Endpoint, err)
		}
	}
	if pc.Framing < 0 || pc.Framing > maxFraming {
		return nil, fmt.Errorf("wireguard: add peer %s: framing %d outside 0..%d", pc.PublicKey, pc.Framing, maxFraming)
	}
	if e.isClosed() {
		return nil, ErrClosed
	}
	e.peersMu.Lock()
	defer e.peersMu.Unlock()
	s := e.peers[pc.PublicKey]
	if s == nil {
		ss, err := dhKey(e.key, (*[32]byte)(&pc.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("wireguard: add peer %s: %w", pc.PublicKey, err)
		}
		s = &Session{e: e, key: pc.PublicKey, staticStatic: ss, probeKey: probeKey(&ss)}
		e.peers[pc.PublicKey] = s
	}
	s.mu.Lock()
	s.psk = nil // a zero key costs a session nothing
	if pc.PresharedKey != zeroPSK {
		psk := pc.PresharedKey
		s.psk = &psk
	}
	s.mu.Unlock()
	s.value.Store(&valueBox{v: pc.Value})
	s.keepalive.Store(int64(pc.PersistentKeepalive))
	s.framing.Store(int32(pc.Framing))
	// A configured endpoint applies when it is new or changed, so that
	// re-applying the same configuration does not undo roaming.
	if dst != nil && (s.cfgEndpoint == nil || pc.Endpoint != *s.cfgEndpoint) {
		s.setEndpoint(dst)
	}
	switch {
	case !pc.Endpoint.IsValid():
		s.cfgEndpoint = nil
	case s.cfgEndpoint == nil || *s.cfgEndpoint != pc.Endpoint:
		ep := pc.Endpoint
		s.cfgEndpoint = &ep
	}
	e.kick(s) // a new keepalive interval or endpoint may move its timers
	return s, nil
}

// RemovePeer revokes a peer: its keys are forgotten at once, packets on
// them are dropped and Send on its session fails. It reports whether the
// peer was authorized.
func (e *Endpoint) RemovePeer(pk PublicKey) bool {
	e.peersMu.Lock()
	s := e.peers[pk]
	delete(e.peers, pk)
	e.peersMu.Unlock()
	if s == nil {
		return false
	}
	s.removed.Store(true)
	s.mu.Lock()
	s.dropKeypairsLocked()
	s.mu.Unlock()
	s.dropStaged()
	e.kick(s) // out of the timer wheel now rather than at its next deadline
	return true
}

// SetPeers makes the directory exactly peers: new keys are added, existing
// ones updated, and keys not listed are removed.
func (e *Endpoint) SetPeers(peers []PeerConfig) error {
	want := make(map[PublicKey]bool, len(peers))
	var errs []error
	for _, pc := range peers {
		want[pc.PublicKey] = true
		if _, err := e.AddPeer(pc); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range e.Sessions() {
		if !want[s.key] {
			e.RemovePeer(s.key)
		}
	}
	return errors.Join(errs...)
}

// Peer returns the session of an authorized key, or nil.
func (e *Endpoint) Peer(pk PublicKey) *Session { return e.lookupPeer(pk) }

func (e *Endpoint) lookupPeer(pk PublicKey) *Session {
	e.peersMu.RLock()
	defer e.peersMu.RUnlock()
	return e.peers[pk]
}

// Sessions returns the sessions of all authorized peers.
func (e *Endpoint) Sessions() []*Session {
	e.peersMu.RLock()
	defer e.peersMu.RUnlock()
	out := make([]*Session, 0, len(e.peers))
	for _, s := range e.peers {
		out = append(out, s)
	}
	return out
}

// Handshake asks for a new handshake with s as initiator (for instance to
// rekey now); it needs a known endpoint and happens asynchronously.
func (e *Endpoint) Handshake(s *Session) { e.requestHandshake(s) }

// requestHandshake flags s for a handshake and kicks it to the timer
// goroutine; packet paths call it, so it does no more than two atomics and
// a non-blocking channel send, once per request.
func (e *Endpoint) requestHandshake(s *Session) {
	if s.wantHandshake.CompareAndSwap(false, true) {
		e.kick(s)
	}
}

// sendRaw sends one handshake or cookie message.
func (e *Endpoint) sendRaw(msg []byte, dst conn.Endpoint) {
	if err := e.bind.Send([][]byte{msg}, dst); err != nil {
		e.stats.sendErrors.Add(1)
		if e.log.Enabled(context.Background(), slog.LevelDebug) {
			e.log.LogAttrs(context.Background(), slog.LevelDebug, "send handshake message", slog.String("dst", dst.DstToString()), slog.Any("err", err))
		}
	}
}
