package agent

import (
	"net"
	"net/netip"

	"github.com/switchyard/switchyard/transport/heartbeat"
)

// A MASQUE session's QUIC packet size only grows (quic-go v0.65 never
// lowers it): when the path shrinks mid-session, full-size datagrams are
// lost while small ones, heartbeats among them, still pass. So every
// bigEvery-th heartbeat goes padded to the session's inner MTU, written
// straight into the session (not through the host's kernel, whose own path
// MTU cache must not decide its size). When bigMisses of them in a row go
// unanswered while a small heartbeat after each is answered, it is the size,
// not the path: the agent closes the session and the link dials a new one,
// which starts at 1232-byte packets and discovers the path again.
const (
	bigEvery  = 20 // probes: one padded probe per 2 s of heartbeats
	bigMisses = 3
)

// bigProbes is how a beat sends its padded probes; mtu nil: none (WireGuard,
// whose prober sizes its own probes).
type bigProbes struct {
	mtu    func() int       // the active MASQUE session's inner MTU; 0 without one
	write  func(pkt []byte) // writes pkt into that session
	shrank func(mtu int)    // the path no longer carries mtu: redial
}

// bigState follows a beat's padded probes; under beat.mu.
type bigState struct {
	seq      uint32 // the latest padded probe; 0: none
	size     int
	answered bool
	missed   int // padded probes in a row lost while small ones were answered
	shrunk   int // the size to report through shrank (tick); 0: none
}

// padLocked judges the previous padded probe and returns the size to pad
// probe b.seq to, or 0 to send it small; b.mu must be held.
func (b *beat) padLocked() int {
	g := &b.bigs
	if b.big.mtu == nil || b.seq%bigEvery != 0 {
		return 0
	}
	switch {
	case g.answered:
		g.missed = 0
	case g.seq != 0 && int32(b.answered-g.seq) > 0: // lost, and a later small one answered
		if g.missed++; g.missed >= bigMisses {
			g.shrunk, g.missed = g.size, 0
		}
	}
	g.seq, g.answered = 0, false
	size := b.big.mtu()
	if size == 0 {
		g.missed = 0 // no session: the next one starts over
		return 0
	}
	g.seq, g.size = b.seq, size
	return size
}

// sendBigLocked writes probe m, padded to an IP packet of size bytes, into
// the MASQUE session, from the heartbeat socket's address (its replies come
// back to it) or, without one, as sendLocked injects; b.mu must be held.
func (b *beat) sendBigLocked(m heartbeat.Message, size int) {
	src := netip.AddrPortFrom(b.src, probePort)
	if b.conn != nil {
		src = b.conn.LocalAddr().(*net.UDPAddr).AddrPort()
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	} else if !src.Addr().IsValid() {
		src = netip.AddrPortFrom(netip.IPv4Unspecified(), probePort)
		if b.dst.Is6() {
			src = netip.AddrPortFrom(netip.IPv6Unspecified(), probePort)
		}
	}
	b.big.write(heartbeat.AppendPaddedPacket(nil, src, netip.AddrPortFrom(b.dst, b.port), m, size))
}

// shrunk returns the size of padded probe the path stopped carrying, once.
func (b *beat) shrunk() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.bigs.shrunk
	b.bigs.shrunk = 0
	return s
}

// probeMTU is the inner MTU of the active MASQUE session, 0 without one.
func (l *link) probeMTU() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ms == nil {
		return 0
	}
	return l.ms.MTU()
}

// writeProbe writes the padded probe pkt into the active MASQUE session.
func (l *link) writeProbe(pkt []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ms != nil {
		_ = l.ms.WritePacket(pkt) // an error shows up as a missing reply
	}
}

// shrank closes the active MASQUE session, whose path no longer carries
// packets of mtu, unless it is a newer one that does not send them: run
// dials a new one (runMASQUE ends when the session does).
func (l *link) shrank(mtu int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ms == nil || l.ms.MTU() < mtu {
		return
	}
	l.shrinks.Add(1)
	l.ms.Close()
}
