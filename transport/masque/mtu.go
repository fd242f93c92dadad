package masque

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// ErrTooBig is what WritePacket returns for a packet larger than the
// session's current inner MTU (Session.MTU): QUIC never fragments, so the
// packet is not sent. The session counts it (Stats.TxTooBig) and logs it,
// rate-limited; the caller answers the packet's sender with ICMP at
// Session.MTU, or better keeps what it sends below it (NotifyMTU).
var ErrTooBig = errors.New("masque: packet larger than the session's inner mtu")

// Polling of quic-go's datagram capacity. quic-go reports a new packet size
// only to a connection tracer (qlog's recovery:mtu_updated), and a tracer
// makes quic-go build an event for every packet, which cost a third of
// BenchmarkForward's throughput; asking SendDatagram with an oversized
// payload costs nothing, so the session asks: often while discovery is
// young, then now and then (a NAT rebinding restarts it on the server).
const (
	mtuPollFast  = 100 * time.Millisecond
	mtuPollSlow  = time.Second
	mtuFastFor   = time.Minute
	tooBigLogGap = 10 * time.Second
)

// oversized is longer than any DATAGRAM payload, so SendDatagram refuses it
// with the current maximum and sends nothing.
var oversized [maxPacketSize]byte

// capacityOf is the largest inner IP packet one datagram of qconn carries
// now, at most MTU; 0 if qconn cannot send datagrams.
func capacityOf(qconn *quic.Conn) int {
	if qconn == nil {
		return 0
	}
	tooLarge, ok := errors.AsType[*quic.DatagramTooLargeError](qconn.SendDatagram(oversized[:]))
	if !ok {
		return 0
	}
	return min(int(tooLarge.MaxDatagramPayloadSize)-datagramOverhead, MTU)
}

// mtuWatch follows a session's inner MTU.
type mtuWatch struct {
	qconn   *quic.Conn
	mtu     atomic.Int64
	kick    chan struct{} // a writer saw quic-go's capacity differ from mtu
	mu      sync.Mutex    // serializes changes and their notification
	notify  func(mtu int)
	lastLog atomic.Int64 // unix nanoseconds of the last too-big log line
}

// MTU is the largest inner IP packet that fits one datagram now: it starts at
// MinMTU (or at what the handshake already confirmed), follows quic-go's path
// MTU discovery up to MTU, and drops when quic-go starts over (the server
// after a NAT rebinding). quic-go never lowers it when a path shrinks
// mid-session: full-size datagrams are then lost until the session is
// redialed (see doc.go). A packet above it is refused with ErrTooBig.
func (s *Session) MTU() int { return int(s.watch.mtu.Load()) }

// NotifyMTU calls f with the current MTU at once and again after every
// change, from the session's watcher (never concurrently; it must not block
// for long, nor call NotifyMTU). The edge sets its router.Peer's MTU in f,
// the agent its TUN's MTU and MSS clamp. A later call replaces f.
func (s *Session) NotifyMTU(f func(mtu int)) {
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	s.watch.notify = f
	if f != nil {
		f(s.MTU())
	}
}

// refreshMTU reads quic-go's capacity and notifies a change.
func (s *Session) refreshMTU() {
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	mtu := capacityOf(s.watch.qconn)
	if mtu <= 0 || int64(mtu) == s.watch.mtu.Load() {
		return
	}
	old := s.watch.mtu.Swap(int64(mtu))
	s.log.Info("MASQUE session inner mtu changed", "remote", s.remote, "mtu", mtu, "was", old)
	if s.watch.notify != nil {
		s.watch.notify(mtu)
	}
}

// watchMTU refreshes the MTU until the session or its connection ends.
func (s *Session) watchMTU() {
	t := time.NewTimer(mtuPollFast)
	defer t.Stop()
	ended := s.watch.qconn.Context().Done()
	for {
		select {
		case <-s.done:
			return
		case <-ended:
			return
		case <-s.watch.kick:
		case <-t.C:
		}
		s.refreshMTU()
		if time.Since(s.opened) < mtuFastFor {
			t.Reset(mtuPollFast)
		} else {
			t.Reset(mtuPollSlow)
		}
	}
}

// fits reports whether a packet of n bytes fits a datagram. Above the known
// MTU it asks quic-go itself (discovery may have just confirmed more) and
// wakes the watcher to notify the change.
func (s *Session) fits(n int) bool {
	if n <= int(s.watch.mtu.Load()) {
		return true
	}
	c := capacityOf(s.watch.qconn)
	if int64(c) != s.watch.mtu.Load() {
		s.kickMTU()
	}
	return n <= c
}

// kickMTU wakes the watcher without waiting.
func (s *Session) kickMTU() {
	select {
	case s.watch.kick <- struct{}{}:
	default:
	}
}

// refuse counts and (at most every tooBigLogGap) logs a packet of n bytes
// too large for the session.
func (s *Session) refuse(n int) error {
	total := s.tooBig.Add(1)
	now := time.Now().UnixNano()
	if last := s.watch.lastLog.Load(); now-last >= int64(tooBigLogGap) && s.watch.lastLog.CompareAndSwap(last, now) {
		s.log.Warn("MASQUE session refused a packet larger than its inner mtu",
			"remote", s.remote, "size", n, "mtu", s.MTU(), "refused", total)
	}
	return ErrTooBig
}
