package wireguard

import (
	"crypto/cipher"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/replay"
	"golang.zx2c4.com/wireguard/tai64n"
)

// keypair is one set of transport keys: a WireGuard "session" in the
// paper's terms. The router never sees it.
type keypair struct {
	send        cipher.AEAD
	recv        cipher.AEAD
	sendNonce   atomic.Uint64
	created     int64 // endpoint clock, nanoseconds
	isInitiator bool
	localIndex  uint32
	remoteIndex uint32
	sess        *Session

	replayMu sync.Mutex
	replay   replay.Filter

	ent indexEntry // what its receiver index points to, once published
}

type keypairPtr = atomic.Pointer[keypair]

// endpointBox lets a conn.Endpoint of any type sit in an atomic.Pointer.
type endpointBox struct{ ep conn.Endpoint }

type valueBox struct{ v any }

// initiation is the initiator's state between an initiation and its
// response, allocated per attempt so that an idle session does not carry it.
// Guarded by Session.mu.
type initiation struct {
	hash         [32]byte
	chainKey     [32]byte
	ephemeral    PrivateKey
	localIndex   uint32
	attemptStart int64 // first initiation of the current attempt
	jitter       int64 // added to RekeyTimeout before the next retransmission
}

// handshake is a session's handshake state in both roles: the initiation
// in flight, if any, the responder's anti-replay state, and the cookie
// state for messages we send to the peer. Guarded by Session.mu.
type handshake struct {
	init            *initiation // non-nil while an initiation of ours is unanswered
	lastInitSent    int64
	lastTimestamp   tai64n.Timestamp
	hasInitConsume  bool
	hasCookie       bool
	lastInitConsume int64
	lastMAC1        [macSize]byte
	cookie          [macSize]byte
	cookieTime      int64
}

// inFlight reports whether an initiation of ours waits for its response.
func (hs *handshake) inFlight() bool { return hs.init != nil }

// endInitiation forgets the initiation in flight, if any, and frees its
// receiver index.
func (hs *handshake) endInitiation(index *indexTable) {
	if hs.init == nil {
		return
	}
	index.remove(hs.init.localIndex)
	clear(hs.init.ephemeral[:])
	hs.init = nil
}

// Session is one authorized peer (a tunnel replica or a device) identified
// by its public key. It lives from AddPeer until RemovePeer and survives
// rekeying; the router attaches its own identity to it with Value.
type Session struct {
	e   *Endpoint
	key PublicKey

	// immutable after creation
	staticStatic [32]byte
	probeKey     [32]byte // path MTU probes' MAC key (probe.go)

	probeMu    sync.Mutex
	probeLimit probeAllow   // probeMu
	reverseMTU atomic.Int32 // edge→agent inner MTU the agent reported
	forwardMTU atomic.Int32 // agent→edge, likewise
	probed     atomic.Bool  // a valid probe came
	padMTU     atomic.Int32 // SetMTU

	cfgEndpoint *netip.AddrPort // last configured endpoint, nil if none; Endpoint.peersMu
	value       atomic.Pointer[valueBox]
	dst         atomic.Pointer[endpointBox]
	keepalive   atomic.Int64 // persistent keepalive interval, ns
	framing     atomic.Int32 // PeerConfig.Framing
	removed     atomic.Bool

	mu       sync.Mutex // guards hs, psk and keypair rotation
	hs       handshake
	psk      *PresharedKey // nil: none (all zeros)
	current  atomic.Pointer[keypair]
	previous atomic.Pointer[keypair]
	next     atomic.Pointer[keypair]

	stagedMu sync.Mutex
	staged   [][]byte // packets waiting for a key, at most maxStaged

	wantHandshake atomic.Bool
	kicked        atomic.Bool  // on Endpoint.kicks
	kickNext      *Session     // next on Endpoint.kicks; written only while kicked
	wl            wheelLink    // place in the timer wheel; timer goroutine only
	deadCheck     int64        // lastDataSent already acted on; timer goroutine only
	lastSent      atomic.Int64 // endpoint clock of the last packet sent
	lastRecv      atomic.Int64 // ... received (authenticated)
	lastDataSent  atomic.Int64 // ... non-keepalive sent
	lastDataRecv  atomic.Int64 // ... non-keepalive received
	lastHandshake atomic.Int64 // wall clock, unix ns

	rxBytes, rxPackets atomic.Uint64
	txBytes, txPackets atomic.Uint64
}

var zeroPSK PresharedKey

// presharedKeyLocked returns the key mixed into handshakes; s.mu held.
func (s *Session) presharedKeyLocked() *PresharedKey {
	if s.psk == nil {
		return &zeroPSK
	}
	return s.psk
}

// PublicKey returns the peer's public key.
func (s *Session) PublicKey() PublicKey { return s.key }

// Value returns the opaque value the edge attached to the peer.
func (s *Session) Value() any {
	if b := s.value.Load(); b != nil {
		return b.v
	}
	return nil
}

// Endpoint returns the peer's current UDP endpoint, or nil if unknown.
func (s *Session) Endpoint() conn.Endpoint {
	if b := s.dst.Load(); b != nil {
		return b.ep
	}
	return nil
}

// RemoteAddr returns the peer's current UDP address, if known.
func (s *Session) RemoteAddr() netip.AddrPort {
	ep := s.Endpoint()
	if ep == nil {
		return netip.AddrPort{}
	}
	switch x := ep.(type) {
	case *conn.StdNetEndpoint:
		return x.AddrPort
	case addrPorter:
		return x.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(ep.DstToString())
	return ap
}

// LastHandshake returns the time of the last completed handshake, or the
// zero time if there was none.
func (s *Session) LastHandshake() time.Time {
	ns := s.lastHandshake.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// SessionStats are a session's traffic counters; bytes are IP packet bytes.
type SessionStats struct {
	RxBytes, RxPackets uint64 // received and delivered to the Receiver
	TxBytes, TxPackets uint64 // sent with Send
}

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	return SessionStats{
		RxBytes: s.rxBytes.Load(), RxPackets: s.rxPackets.Load(),
		TxBytes: s.txBytes.Load(), TxPackets: s.txPackets.Load(),
	}
}

// Established reports whether the session has a usable sending key.
func (s *Session) Established() bool {
	kp := s.current.Load()
	return kp != nil && s.e.keypairUsable(kp, s.e.now())
}

// setEndpoint records ep as the peer's endpoint if it differs (roaming).
func (s *Session) setEndpoint(ep conn.Endpoint) {
	if ep == nil {
		return
	}
	if b := s.dst.Load(); b != nil && sameEndpoint(b.ep, ep) {
		return
	}
	s.dst.Store(&endpointBox{ep: ep})
}

// addrPorter is an endpoint that has its address at hand (OffloadEndpoint).
type addrPorter interface{ AddrPort() netip.AddrPort }

func sameEndpoint(a, b conn.Endpoint) bool {
	if x, ok := a.(*conn.StdNetEndpoint); ok {
		y, ok := b.(*conn.StdNetEndpoint)
		return ok && x.AddrPort == y.AddrPort
	}
	if x, ok := a.(addrPorter); ok {
		y, ok := b.(addrPorter)
		return ok && x.AddrPort() == y.AddrPort() && a.SrcIP() == b.SrcIP()
	}
	if a == nil || b == nil {
		return a == b
	}
	ta := reflect.TypeOf(a)
	if ta != reflect.TypeOf(b) {
		return false
	}
	if ta.Comparable() {
		return a == b
	}
	return a.DstToString() == b.DstToString() // not per packet for std binds
}

// dropKeypairs forgets every keypair and pending handshake; s.mu held.
func (s *Session) dropKeypairsLocked() {
	for _, p := range [...]*keypairPtr{&s.previous, &s.current, &s.next} {
		if kp := p.Swap(nil); kp != nil {
			s.e.index.remove(kp.localIndex)
		}
	}
	s.hs.endInitiation(s.e.index)
}

// installKeypair makes kp the current (initiator) or next (responder)
// keypair, retiring older ones; s.mu held.
func (s *Session) installKeypairLocked(kp *keypair) {
	prev, cur, next := s.previous.Load(), s.current.Load(), s.next.Load()
	if kp.isInitiator {
		if next != nil {
			s.next.Store(nil)
			s.previous.Store(next)
			if cur != nil {
				s.e.index.remove(cur.localIndex)
			}
		} else {
			s.previous.Store(cur)
		}
		if prev != nil {
			s.e.index.remove(prev.localIndex)
		}
		s.current.Store(kp)
	} else {
		s.next.Store(kp)
		if next != nil {
			s.e.index.remove(next.localIndex)
		}
		s.previous.Store(nil)
		if prev != nil {
			s.e.index.remove(prev.localIndex)
		}
	}
}

// confirm promotes kp from next to current when the first packet arrives
// on it (the responder's key confirmation) and reports whether it did.
func (s *Session) confirm(kp *keypair) bool {
	s.mu.Lock()
	if s.next.Load() != kp {
		s.mu.Unlock()
		return false
	}
	if old := s.previous.Load(); old != nil {
		s.e.index.remove(old.localIndex)
	}
	s.previous.Store(s.current.Load())
	s.current.Store(kp)
	s.next.Store(nil)
	s.lastHandshake.Store(time.Now().UnixNano())
	s.mu.Unlock()
	s.e.kick(s) // keepalives can go out now; once per handshake
	return true
}
