package wireguard

import (
	"log/slog"
	"runtime"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// Protocol constants from the WireGuard paper (section 6.1).
const (
	DefaultRekeyAfterMessages  = 1 << 60
	DefaultRejectAfterMessages = 1<<64 - 1<<13 - 1
	DefaultRekeyAfterTime      = 120 * time.Second
	DefaultRekeyAttemptTime    = 90 * time.Second
	DefaultRekeyTimeout        = 5 * time.Second
	DefaultRejectAfterTime     = 180 * time.Second
	DefaultKeepaliveTimeout    = 10 * time.Second
	DefaultCookieRefreshTime   = 120 * time.Second

	handshakeInitiationRate = time.Second / 50 // per peer, as wireguard-go
	underLoadAfterTime      = time.Second
	handshakeQueueSize      = 1024
	defaultMaxSessions      = 1 << 17
	defaultTick             = 100 * time.Millisecond
	maxJitter               = 334 * time.Millisecond
)

// Timers holds the protocol's limits; a zero field takes the protocol value.
// Tests shorten them to exercise rekeying quickly.
type Timers struct {
	RekeyAfterMessages  uint64        // initiate a new handshake after this many sent messages
	RejectAfterMessages uint64        // never use a key for more messages than this
	RekeyAfterTime      time.Duration // initiator rekeys sessions older than this
	RejectAfterTime     time.Duration // a key older than this is never used
	RekeyAttemptTime    time.Duration // stop retrying a handshake after this
	RekeyTimeout        time.Duration // retransmit an unanswered initiation after this
	KeepaliveTimeout    time.Duration // passive keepalive delay
	CookieRefreshTime   time.Duration // cookie secret and cookie lifetime
	Tick                time.Duration // timer resolution, the timer wheel's slot width (default 100ms)
}

func (t Timers) withDefaults() Timers {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if t.RekeyAfterMessages == 0 {
		t.RekeyAfterMessages = DefaultRekeyAfterMessages
	}
	if t.RejectAfterMessages == 0 {
		t.RejectAfterMessages = DefaultRejectAfterMessages
	}
	def(&t.RekeyAfterTime, DefaultRekeyAfterTime)
	def(&t.RejectAfterTime, DefaultRejectAfterTime)
	def(&t.RekeyAttemptTime, DefaultRekeyAttemptTime)
	def(&t.RekeyTimeout, DefaultRekeyTimeout)
	def(&t.KeepaliveTimeout, DefaultKeepaliveTimeout)
	def(&t.CookieRefreshTime, DefaultCookieRefreshTime)
	def(&t.Tick, defaultTick)
	return t
}

// Receiver consumes decrypted packets. Receive is called from the
// endpoint's receive goroutines (possibly several at once); pkts and the
// buffers they point into are only valid until it returns, but may be passed
// to Endpoint.Send before that to forward them without copying. Receive
// must not call Endpoint.Close.
type Receiver interface {
	Receive(pkts []Packet)
}

// ReceiverFunc adapts a function to a Receiver.
type ReceiverFunc func(pkts []Packet)

// Receive calls f(pkts).
func (f ReceiverFunc) Receive(pkts []Packet) { f(pkts) }

// Packet is one decrypted IP packet and the session it arrived on.
type Packet struct {
	Session *Session // the session it arrived on
	// Buf[Off:] is the IP packet. In front of it, Buf[Off-Framing:Off]
	// holds the peer's framing (PeerConfig.Framing; none for most peers)
	// and Buf[:Off-Framing] is free space of Headroom +
	// Config.ReceiveHeadroom bytes; cap(Buf) leaves at least Tailroom, so
	// Send(s, [][]byte{p.Buf}, p.Off) forwards the IP packet in place.
	Buf []byte
	Off int
}

// Data returns the IP packet.
func (p Packet) Data() []byte { return p.Buf[p.Off:] }

// Config configures an Endpoint.
type Config struct {
	PrivateKey PrivateKey   // the endpoint's static key; required
	ListenPort uint16       // UDP port; 0 picks one
	Bind       conn.Bind    // nil means NewOffloadBind() on Linux, conn.NewStdNetBind() elsewhere
	Receiver   Receiver     // gets decrypted packets; required
	Logger     *slog.Logger // nil discards logs
	Timers     Timers       // protocol limits; zero values are the defaults
	// Workers is the number of crypto goroutines; 0 means runtime.NumCPU().
	Workers int
	// MaxSessions bounds the receiver-index table (a peer uses up to four
	// indices); 0 means 131072. It is rounded up to a power of two.
	MaxSessions int
	// ReceiveHeadroom is free space the endpoint leaves in front of every
	// received packet beyond Headroom, so that a receiver can prepend a
	// header of its own when it forwards the packet (the edge's trunk
	// header) without copying it. It must not be negative; 0 means none.
	ReceiveHeadroom int
	// OnPathMTU, if set, is told each new edge→agent inner MTU an agent's
	// path MTU probes report for its session (probe.go); it is called on a
	// receive goroutine and must not block.
	OnPathMTU func(s *Session, mtu int)
}

func (c *Config) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return runtime.NumCPU()
}
