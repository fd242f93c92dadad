package wireguard

import (
	"context"
	"log/slog"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// The edge's side of path MTU probing: it answers probes, never drives a
// search. It answers only a probe whose key is a session it knows and whose
// MAC verifies, at most probeBurst at once and probeRate a second per
// session, and always to the session's current WireGuard endpoint, never to
// the probe's source address: a forged or replayed probe cannot make it send
// anything anywhere else (no amplifier, no reflector).
const (
	probeBurst = 64
	probeRate  = 32 // per second
	// maxRProbe bounds the RPROBE a probe may ask for: the largest outer
	// datagram of the edge's largest MTU (9000) over IPv6, less the IP and
	// UDP headers.
	maxRProbe = 9000 + OverheadIPv6 - 48
)

// DFSender is a conn.Bind that can send one datagram with DF set while its
// data goes without (ProbeBind).
type DFSender interface {
	SendDF(buf []byte, ep conn.Endpoint) error
}

// probeState is a session's probe rate limiter and the inner MTU its agent
// last reported for the edge→agent direction; guarded by its mutex.
type probeAllow struct {
	tokens float64
	last   int64 // endpoint clock
}

func (s *Session) allowProbe(now int64) bool {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	a := &s.probeLimit
	if a.last == 0 {
		a.tokens = probeBurst
	} else {
		a.tokens = min(probeBurst, a.tokens+float64(now-a.last)*probeRate/float64(time.Second))
	}
	a.last = now
	if a.tokens < 1 {
		return false
	}
	a.tokens--
	return true
}

// PathMTU returns what the session's agent last reported from its probes:
// the inner MTU of each direction (0: not decided yet), and whether it has
// sent a valid probe at all.
func (s *Session) PathMTU() (m PathMTU, probed bool) {
	return PathMTU{Forward: int(s.forwardMTU.Load()), Reverse: int(s.reverseMTU.Load())}, s.probed.Load()
}

// ReverseMTU returns the edge→agent inner MTU the session's agent last
// reported from its probes; 0 if none.
func (s *Session) ReverseMTU() int { return int(s.reverseMTU.Load()) }

// SetMTU caps the padding of what the endpoint sends on s at mtu bytes of
// IP packet (0: no cap), as wireguard-go caps it at its device MTU, so that
// an inner packet of at most mtu bytes never makes an outer datagram larger
// than mtu plus the overhead.
func (s *Session) SetMTU(mtu int) { s.padMTU.Store(int32(max(mtu, 0))) }

// handleProbe answers a probe message received on the endpoint's port.
func (e *Endpoint) handleProbe(msg []byte, now int64) {
	m, ok := parseProbe(msg)
	if !ok || m.kind != probeKindProbe || m.rsize > maxRProbe {
		e.stats.probeDropped.Add(1)
		return
	}
	s := e.lookupPeer(m.agent)
	if s == nil || s.removed.Load() || !checkProbeMAC(msg, &s.probeKey) {
		e.stats.probeDropped.Add(1)
		return
	}
	box := s.dst.Load()
	if box == nil || !s.allowProbe(now) {
		e.stats.probeDropped.Add(1)
		return
	}
	s.probed.Store(true)
	if m.fmtu > 0 {
		s.forwardMTU.Store(int32(m.fmtu))
	}
	if m.rmtu > 0 && int32(m.rmtu) != s.reverseMTU.Load() {
		old := s.reverseMTU.Swap(int32(m.rmtu))
		if e.onPathMTU != nil {
			e.onPathMTU(s, m.rmtu)
		}
		e.log.Info("path MTU", "session", s.key.String(), "direction", "edge to agent", "old", old, "new", m.rmtu)
	}
	e.stats.probesAnswered.Add(1)
	var buf [ProbeHeaderSize]byte
	if m.flags&probeFlagAck != 0 {
		ack := probeMsg{kind: probeKindAck, agent: m.agent, nonce: m.nonce, size: len(msg)}
		putProbe(buf[:], &ack, &s.probeKey)
		e.sendProbeMsg(buf[:], box.ep, false)
	}
	if m.rsize >= ProbeHeaderSize {
		rp := make([]byte, m.rsize)
		r := probeMsg{kind: probeKindRProbe, agent: m.agent, nonce: m.nonce, size: m.rsize}
		putProbe(rp, &r, &s.probeKey)
		e.sendProbeMsg(rp, box.ep, true)
	}
}

func (e *Endpoint) sendProbeMsg(msg []byte, dst conn.Endpoint, df bool) {
	var err error
	if d, ok := e.bind.(DFSender); ok && df {
		err = d.SendDF(msg, dst)
	} else {
		err = e.bind.Send([][]byte{msg}, dst)
	}
	if err != nil && e.log.Enabled(context.Background(), slog.LevelDebug) {
		e.log.LogAttrs(context.Background(), slog.LevelDebug, "send probe answer", slog.String("dst", dst.DstToString()), slog.Int("size", len(msg)), slog.Any("err", err))
	}
}
