package masque

import (
	"cmp"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	connectip "github.com/quic-go/connect-ip-go"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"
)

// Buffer layout of received packets: Receive gets bufs[i][Headroom:] as the
// IP packet, with Headroom bytes free in front (a TUN's virtio header, a
// WireGuard header written in place) and at least Tailroom spare capacity
// after it (WireGuard's padding and tag).
const (
	Headroom = 32
	Tailroom = 32
	bufSize  = Headroom + 2048 + Tailroom // a QUIC datagram is at most maxPacketSize
)

// queueLen bounds the packets read off the connection but not yet handled.
// quic-go keeps only 128 received datagrams per connection and drops the
// rest, so a dedicated reader moves them into this larger queue at once and
// Receive runs apart from it.
const queueLen = 1024

// maxBatch is the most packets one Receive call gets.
const maxBatch = 64

// Receiver gets the packets of a session in batches: bufs[i][Headroom:] is
// an IP packet. The buffers are valid only until Receive returns, and Receive
// may modify them (encrypt in place, write headers into the headroom).
type Receiver interface {
	Receive(s *Session, bufs [][]byte)
}

// Stats are a session's counters.
type Stats struct {
	RxPackets uint64 `json:"rx_packets"` // read off the connection
	// TxPackets counts packets handed to connect-ip-go, which drops (and
	// logs) those it refuses, such as a bad IPv4 checksum, without an error.
	TxPackets uint64 `json:"tx_packets"`
	TxErrors  uint64 `json:"tx_errors"`
	// TxTooBig counts packets refused with ErrTooBig (not in TxErrors).
	TxTooBig uint64 `json:"tx_too_big"`
	// QUIC are the connection's own counters (quic-go's ConnectionStats).
	// In bulk traffic each QUIC packet carries one datagram, so QUIC
	// packets received well above RxPackets are datagrams dropped between
	// quic-go and the session: quic-go queues at most 128 received
	// datagrams per connection and HTTP/3 32 per request stream, and both
	// drop the rest.
	QUIC QUICStats `json:"quic"`
}

// Add sums two sessions' counters; the RTT and window are the larger.
func (st Stats) Add(o Stats) Stats {
	return Stats{RxPackets: st.RxPackets + o.RxPackets, TxPackets: st.TxPackets + o.TxPackets, TxErrors: st.TxErrors + o.TxErrors,
		TxTooBig: st.TxTooBig + o.TxTooBig, QUIC: QUICStats{
			PacketsSent: st.QUIC.PacketsSent + o.QUIC.PacketsSent, PacketsReceived: st.QUIC.PacketsReceived + o.QUIC.PacketsReceived,
			PacketsLost: st.QUIC.PacketsLost + o.QUIC.PacketsLost, SmoothedRTT: max(st.QUIC.SmoothedRTT, o.QUIC.SmoothedRTT),
			CongestionWindow: max(st.QUIC.CongestionWindow, o.QUIC.CongestionWindow)}}
}

// QUICStats are a QUIC connection's counters.
type QUICStats struct {
	PacketsSent     uint64        `json:"packets_sent"`
	PacketsReceived uint64        `json:"packets_received"`
	PacketsLost     uint64        `json:"packets_lost"` // declared lost by the sender's loss detection
	SmoothedRTT     time.Duration `json:"smoothed_rtt_ns"`
	// CongestionWindow is the sender's, in bytes.
	CongestionWindow uint64 `json:"congestion_window"`
}

// Session is one CONNECT-IP session: the edge holds one per connected agent,
// an agent one to the edge. WritePacket is safe for concurrent use.
type Session struct {
	conn   *connectip.Conn
	remote netip.AddrPort
	opened time.Time
	value  atomic.Value
	log    *slog.Logger
	watch  mtuWatch
	done   chan struct{} // closed by Close

	rx, tx, txErr, tooBig atomic.Uint64
	// prefix starts every datagram the session sends itself (sendDirect):
	// RFC 9297's quarter stream id of its request, then RFC 9484's context
	// id 0. Nil sends through connect-ip-go.
	prefix []byte

	closeOnce sync.Once
	closeErr  error
	onClose   func() // then closes what the session owns (an agent's QUIC connection)
}

// newSession wraps conn, which runs on qconn, and starts following its MTU.
func newSession(conn *connectip.Conn, qconn *quic.Conn, log *slog.Logger) *Session {
	s := &Session{conn: conn, opened: time.Now(), log: log, done: make(chan struct{})}
	s.watch.qconn = qconn
	s.watch.kick = make(chan struct{}, 1)
	if u, ok := qconn.RemoteAddr().(*net.UDPAddr); ok {
		s.remote = u.AddrPort()
	}
	s.watch.mtu.Store(int64(cmp.Or(capacityOf(qconn), MinMTU)))
	go s.watchMTU()
	return s
}

// RemoteAddr is the peer's UDP address.
func (s *Session) RemoteAddr() netip.AddrPort { return s.remote }

// Opened is when the session was established.
func (s *Session) Opened() time.Time { return s.opened }

// SetValue attaches the owner's value (the edge's router.Peer) to the session.
func (s *Session) SetValue(v any) { s.value.Store(v) }

// Value returns what SetValue attached, or nil.
func (s *Session) Value() any { return s.value.Load() }

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	st := Stats{RxPackets: s.rx.Load(), TxPackets: s.tx.Load(), TxErrors: s.txErr.Load(), TxTooBig: s.tooBig.Load()}
	if q := s.watch.qconn; q != nil {
		qs := q.ConnectionStats()
		st.QUIC = QUICStats{PacketsSent: qs.PacketsSent, PacketsReceived: qs.PacketsReceived, PacketsLost: qs.PacketsLost,
			SmoothedRTT: qs.SmoothedRTT, CongestionWindow: qs.CongestionWindow}
	}
	return st
}

// WritePacket sends the IP packet pkt. connect-ip-go decrements its TTL (hop
// limit) in place before it copies it into a datagram, so WritePacket first
// adds that hop back: the router, or the kernel that forwarded the packet to
// the TUN, has already counted it. pkt must therefore be the caller's own
// buffer, and it is modified. A packet larger than MTU() is not sent: it
// returns ErrTooBig (counted and logged), never connect-ip-go's ICMP reply,
// which claims an MTU of 1280 from the packet's destination; the caller
// answers with ICMP at MTU() from an address of its own.
func (s *Session) WritePacket(pkt []byte) error {
	if !s.fits(len(pkt)) {
		return s.refuse(len(pkt))
	}
	if s.prefix != nil {
		return s.sendDirect(pkt)
	}
	restoreHop(pkt)
	icmp, err := s.conn.WritePacket(pkt)
	if icmp != nil { // quic-go's capacity fell below MTU() since fits
		s.kickMTU()
		return s.refuse(len(pkt))
	}
	if err != nil {
		s.txErr.Add(1)
		return err
	}
	s.tx.Add(1)
	return nil
}

// datagramBufs are the buffers sendDirect composes datagrams in; quic-go
// copies what it is given, so a buffer is free again once SendDatagram returns.
var datagramBufs = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

// sendDirect sends pkt as one HTTP datagram straight on the QUIC
// connection, in the wire format connect-ip-go and HTTP/3 would produce,
// without their two copies, two allocations and connect-ip-go's
// re-parsing of a packet the router has checked already (nor its TTL
// decrement, which WritePacket would have to undo): quic-go copies it once.
func (s *Session) sendDirect(pkt []byte) error {
	select {
	case <-s.done:
		return net.ErrClosed
	default:
	}
	bp := datagramBufs.Get().(*[]byte)
	d := append(append((*bp)[:0], s.prefix...), pkt...)
	err := s.watch.qconn.SendDatagram(d)
	*bp = d[:0]
	datagramBufs.Put(bp)
	if err != nil {
		if _, ok := errors.AsType[*quic.DatagramTooLargeError](err); ok {
			s.kickMTU() // quic-go's capacity fell below MTU() since fits
			return s.refuse(len(pkt))
		}
		s.txErr.Add(1)
		return err
	}
	s.tx.Add(1)
	return nil
}

// datagramPrefix is what starts the HTTP datagrams of the request on
// stream id: its quarter stream id (RFC 9297) and context id 0 (RFC 9484).
func datagramPrefix(id quic.StreamID) []byte {
	return quicvarint.Append(quicvarint.Append(nil, uint64(id/4)), 0)
}

// restoreHop raises the TTL (hop limit) of pkt by one unless it is already
// the maximum, updating the IPv4 header checksum (RFC 1624): connect-ip-go
// checks the checksum, then decrements and recomputes it.
func restoreHop(pkt []byte) {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4 && pkt[8] < 255:
		old := binary.BigEndian.Uint16(pkt[8:10])
		pkt[8]++
		sum := uint32(^binary.BigEndian.Uint16(pkt[10:12])) + uint32(^old) + uint32(binary.BigEndian.Uint16(pkt[8:10]))
		sum = sum&0xffff + sum>>16
		sum = sum&0xffff + sum>>16
		binary.BigEndian.PutUint16(pkt[10:12], ^uint16(sum))
	case len(pkt) >= 40 && pkt[0]>>4 == 6 && pkt[7] < 255:
		pkt[7]++
	}
}

// Serve delivers the session's packets to r until the session ends (Close,
// the peer leaving, or the path going silent); it returns nil after Close.
// It runs the dedicated reader on its own goroutine and waits for it.
func (s *Session) Serve(r Receiver) error {
	free := make(chan []byte, queueLen)
	full := make(chan []byte, queueLen)
	for range queueLen {
		free <- make([]byte, bufSize)
	}
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(full)
		for {
			buf := <-free
			n, err := s.conn.ReadPacket(buf[Headroom : bufSize-Tailroom])
			if err != nil {
				readErr = err
				return
			}
			s.rx.Add(1)
			full <- buf[:Headroom+n]
		}
	}()
	batch := make([][]byte, 0, maxBatch)
	for buf := range full {
		batch = append(batch[:0], buf)
	more:
		for len(batch) < maxBatch {
			select {
			case b, ok := <-full:
				if !ok {
					break more
				}
				batch = append(batch, b)
			default:
				break more
			}
		}
		r.Receive(s, batch)
		for i, b := range batch {
			free <- b[:cap(b)]
			batch[i] = nil
		}
	}
	wg.Wait()
	if errors.Is(readErr, net.ErrClosed) {
		var ce *connectip.CloseError
		if errors.As(readErr, &ce) && ce.Remote {
			return readErr
		}
		return nil
	}
	return readErr
}

// Close ends the session; Serve returns.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = s.conn.Close()
		if s.onClose != nil {
			s.onClose()
		}
	})
	return s.closeErr
}
