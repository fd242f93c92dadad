package agent

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/internal/atomicfile"
	"github.com/switchyard/switchyard/transport/heartbeat"
)

// healthFile, in a connector's state directory, holds 0 while the edge
// answers heartbeats and 1 otherwise, for a keepalived track_file with
// weight 0 (non-zero means FAULT).
const healthFile = "health"

// Files that older versions kept in the state directory; the control socket
// (localapi) replaced them, and the agent removes them at start.
var oldFiles = []string{"status.json", "preferred"}

// beat sends heartbeat probes through the tunnel to the edge's own address
// and follows the replies: whether the edge is reachable and, for a
// connector, whether this replica is active. When the edge stops answering it
// calls lost, at most once per second, to restart the WireGuard handshake.
type beat struct {
	log       *slog.Logger
	stateDir  string
	replica   bool // a connector: keep the health file
	priority  uint8
	preferred func() bool // this host holds its site's gateway address (connector promote)
	lost      func()
	back      atomic.Pointer[func()] // called when the edge answers again after a loss (path MTU searches again)
	drained   func()                 // the edge began to drain (its replies say Draining); nil: nothing to do
	// noSocket: the agent's TUN is not the host's (Seams.TUN), so a host
	// socket cannot reach the edge through it: probes are written into the
	// TUN as packets by inject (none are sent without it), and replies come
	// to gotReply (hostTunnel.takeReply).
	noSocket bool
	inject   func(pkt []byte)
	big      bigProbes // padded probes into a MASQUE session (shrink.go)

	port uint16 // the edge's heartbeat port: heartbeat.Port but in tests
	// edge is the WireGuard key of the edge of a pair the beat probes
	// (hostTunnel.set); empty with one edge.
	edge atomic.Pointer[string]

	mu           sync.Mutex
	conn         *net.UDPConn
	src, dst     netip.Addr
	seq          uint32
	answered     uint32               // the latest probe the edge answered
	sent         map[uint32]time.Time // recent probes, for the RTT
	lastReply    time.Time
	rtt          time.Duration
	active       bool
	isPref       bool // preferred() at the last tick
	leaving      bool
	standby      bool // the agent's standby edge: probes say so, and the health file is the active edge's
	draining     bool // the edge's latest reply said it is stopping (heartbeat.Draining)
	healthy      bool
	everHealthy  bool
	healthySince time.Time // when healthy last turned true; zero while unhealthy
	lastLost     time.Time
	bigs         bigState

	changed chan struct{} // a reply changed what the edge says
	stop    chan struct{}
	done    sync.WaitGroup
}

func newBeat(log *slog.Logger, stateDir string, hc heartbeatConfig, lost func()) *beat {
	b := makeBeat(log, stateDir, hc, lost, heartbeat.Port)
	b.done.Add(1)
	go b.run()
	return b
}

// makeBeat is newBeat without the ticking goroutine: tick drives it (tests),
// aiming at the edge's port.
func makeBeat(log *slog.Logger, stateDir string, hc heartbeatConfig, lost func(), port uint16) *beat {
	b := &beat{log: log, stateDir: stateDir, replica: hc.replica, priority: hc.priority, preferred: hc.preferred,
		noSocket: hc.noSocket, inject: hc.inject, big: hc.big, lost: lost, drained: hc.drained, port: port,
		sent: map[uint32]time.Time{}, changed: make(chan struct{}, 1), stop: make(chan struct{}),
		lastLost: time.Now()} // give the first handshake a second before restarting it
	if b.preferred == nil {
		b.preferred = func() bool { return false }
	}
	b.writeHealth(false)
	return b
}

// heartbeatTarget picks where an agent's heartbeats go and where from, given
// the host's IPv4 and IPv6 addresses inside its site (a client's overlay
// address as src4) and the edge's two addresses: an IPv4 source to the edge's
// IPv4 address, else an IPv6 one to its IPv6 address. With neither, src is
// invalid and the kernel picks the source (the probes go to the edge's IPv4
// address, which the overlay route into the TUN covers): the edge answers
// heartbeats by the session they came on, whatever their source. Liveness
// so never depends on the agent sending data, nor on its address family.
func heartbeatTarget(src4, src6, edge4, edge6 netip.Addr) (src, dst netip.Addr) {
	switch {
	case src4.IsValid():
		return src4, edge4
	case src6.IsValid() && edge6.IsValid():
		return src6, edge6
	}
	return netip.Addr{}, edge4
}

// aim points the probes at the edge's address dst, sent from src (a site
// address of this host, or the client's overlay address); an invalid src
// lets the kernel pick the source (see heartbeatTarget).
func (b *beat) aim(src, dst netip.Addr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if src == b.src && dst == b.dst && b.conn != nil {
		return
	}
	if b.conn != nil {
		b.conn.Close()
		b.conn = nil
	}
	b.src, b.dst = src, dst
	if !dst.IsValid() || b.noSocket {
		return
	}
	network, laddr := "udp4", (*net.UDPAddr)(nil)
	if dst.Is6() {
		network = "udp6"
	}
	if src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := net.DialUDP(network, laddr, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, b.port)))
	if err != nil {
		b.log.Warn("no heartbeats: opening the heartbeat socket failed; the edge will take seconds, not milliseconds, to notice a failure",
			"src", src, "edge", dst, "err", err)
		return
	}
	if !src.IsValid() {
		b.log.Info("this host has no address inside its site's prefixes: heartbeats go from an address the kernel picks",
			"src", c.LocalAddr(), "edge", dst)
	}
	b.conn = c
	b.done.Add(1)
	go b.read(c)
}

func (b *beat) run() {
	defer b.done.Done()
	t := time.NewTicker(heartbeat.DefaultInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.tick(time.Now())
	}
}

// tick sends one probe and re-evaluates health.
func (b *beat) tick(now time.Time) {
	preferred := b.replica && b.preferred()
	b.mu.Lock()
	if preferred != b.isPref {
		b.log.Info("gateway preference changed", "preferred", preferred)
		b.isPref = preferred
	}
	b.sendLocked(now)
	// Unhealthy once Multiplier probes in a row went unanswered, counted in
	// probes rather than time: if this agent itself stalled (SIGSTOP, a
	// loaded host), the edge had no probe to answer meanwhile, and the
	// probes before the stall were answered.
	healthy := b.probing() && !b.lastReply.IsZero() && b.seq-b.answered <= heartbeat.DefaultMultiplier
	wasHealthy, wasEver := b.healthy, b.everHealthy
	b.healthy = healthy
	switch {
	case !healthy:
		b.healthySince = time.Time{}
	case !wasHealthy:
		b.healthySince = now
	}
	b.everHealthy = b.everHealthy || healthy
	if !healthy && b.active {
		b.active = false
	}
	lost := !healthy && b.probing() && now.Sub(b.lastLost) >= time.Second
	if lost {
		b.lastLost = now
	}
	active, standby := b.active, b.standby
	b.mu.Unlock()

	if healthy != wasHealthy {
		if !standby {
			b.writeHealth(healthy)
		}
		if healthy {
			b.log.Info("edge answers heartbeats", "active", active)
			if f := b.back.Load(); f != nil && wasEver {
				(*f)()
			}
		} else {
			b.log.Warn("edge stopped answering heartbeats; restarting the handshake")
		}
	}
	if lost && b.lost != nil && !b.leavingNow() {
		b.lost()
	}
	if mtu := b.shrunk(); mtu > 0 {
		b.log.Warn("MASQUE path shrank below the session's MTU; redialing", "mtu", mtu)
		b.big.shrank(mtu)
	}
}

func (b *beat) leavingNow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leaving
}

// probing reports whether probes go out (a socket, or the TUN); b.mu must
// be held.
func (b *beat) probing() bool {
	return b.conn != nil || b.inject != nil && b.noSocket && b.dst.IsValid()
}

// edgeKey is the key of the edge of a pair the beat probes; empty with one edge.
func (b *beat) edgeKey() string {
	if k := b.edge.Load(); k != nil {
		return *k
	}
	return ""
}

// setEdgeKey records the key of the edge of a pair the beat probes.
func (b *beat) setEdgeKey(k string) { b.edge.Store(&k) }

// target is the edge's address the probes go to.
func (b *beat) target() netip.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dst
}

// isHealthy reports whether the edge answers the probes.
func (b *beat) isHealthy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.healthy
}

// healthyFor reports whether the edge has answered the probes, without
// missing Multiplier in a row, for at least d before now: the hold before
// an agent moves its traffic back to its home edge.
func (b *beat) healthyFor(d time.Duration, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.healthy && !b.healthySince.IsZero() && now.Sub(b.healthySince) >= d
}

// probeNow sends a probe out of schedule, so that the edge learns at once
// what changed (the standby flag after a swap) rather than at the next tick.
func (b *beat) probeNow() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sendLocked(time.Now())
}

// wasHealthy reports whether the edge was ever healthy (answering probes).
func (b *beat) wasHealthy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.everHealthy
}

// isDraining reports whether the edge's latest reply said it is stopping:
// it is healthy still, but no edge to move the traffic to.
func (b *beat) isDraining() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.draining
}

// setStandby says whether the edge is the agent's standby one (its probes
// say so); the active one's beat keeps the health file.
func (b *beat) setStandby(standby bool) {
	b.mu.Lock()
	was, healthy := b.standby, b.healthy
	b.standby = standby
	b.mu.Unlock()
	if was && !standby {
		b.writeHealth(healthy)
	}
}

// sendLocked sends one probe; b.mu must be held.
func (b *beat) sendLocked(now time.Time) {
	if !b.probing() {
		return
	}
	b.seq++
	m := heartbeat.Message{Type: heartbeat.Probe, Priority: b.priority, Seq: b.seq,
		Interval: heartbeat.DefaultInterval, Multiplier: heartbeat.DefaultMultiplier}
	if b.isPref {
		m.Flags |= heartbeat.Preferred
	}
	if b.leaving {
		m.Flags |= heartbeat.Leaving
	}
	if b.standby {
		m.Flags |= heartbeat.Standby
	}
	b.sent[b.seq] = now
	delete(b.sent, b.seq-2*heartbeat.DefaultMultiplier)
	if size := b.padLocked(); size > 0 {
		b.sendBigLocked(m, size)
		return
	}
	if b.conn == nil { // through the TUN
		src := b.src
		if !src.IsValid() { // the edge answers by session, whatever the source
			src = netip.IPv4Unspecified()
			if b.dst.Is6() {
				src = netip.IPv6Unspecified()
			}
		}
		b.inject(heartbeat.AppendPacket(nil, netip.AddrPortFrom(src, probePort), netip.AddrPortFrom(b.dst, b.port), m))
		return
	}
	// An error (no route into the tunnel yet, the edge unreachable) shows up as
	// missing replies.
	_, _ = b.conn.Write(m.Append(nil))
}

// probePort is the source port of probes written into the TUN.
const probePort = 40000

// read follows the replies on c until it is closed.
func (b *beat) read(c *net.UDPConn) {
	defer b.done.Done()
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // ICMP errors surface as read errors on a connected socket
		}
		m, err := heartbeat.Parse(buf[:n])
		if err != nil || m.Type != heartbeat.Reply {
			continue
		}
		b.gotReply(m)
	}
}

// gotReply takes the edge's reply m.
func (b *beat) gotReply(m heartbeat.Message) {
	now := time.Now()
	b.mu.Lock()
	at, ok := b.sent[m.Seq]
	if ok && m.Seq == b.bigs.seq {
		b.bigs.answered = true
	}
	if ok {
		b.lastReply, b.rtt = now, now.Sub(at)
		if int32(m.Seq-b.answered) > 0 {
			b.answered = m.Seq
		}
		active := m.Flags&heartbeat.Active != 0
		if active != b.active && b.replica && !b.standby {
			b.log.Info("replica role changed", "active", active)
		}
		b.active = active
	}
	draining := ok && m.Flags&heartbeat.Draining != 0
	began := draining && !b.draining
	if ok {
		b.draining = draining // an edge that answers without it again is another run of it
	}
	b.mu.Unlock()
	if began {
		b.log.Info("the edge is stopping (draining)", "edge", b.target())
		if b.drained != nil {
			b.drained()
		}
	}
	if ok {
		select {
		case b.changed <- struct{}{}:
		default:
		}
	}
}

// status is the current Status of the agent.
func (b *beat) status() localapi.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.statusLocked(time.Now())
}

// statusLocked is the current Status; b.mu must be held.
func (b *beat) statusLocked(now time.Time) localapi.Status {
	st := localapi.Status{PID: os.Getpid(), Healthy: b.healthy, Active: b.active, Preferred: b.replica && b.preferred(),
		Priority: int(b.priority), LastReply: b.lastReply, UpdatedAt: now}
	if b.conn != nil {
		st.Source = b.conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap().String()
	} else if b.src.IsValid() {
		st.Source = b.src.String()
	}
	if b.rtt > 0 {
		st.RTT = b.rtt.String()
	}
	return st
}

// writeHealth writes the keepalived track file of a connector.
func (b *beat) writeHealth(healthy bool) {
	if !b.replica {
		return
	}
	v := "1\n"
	if healthy {
		v = "0\n"
	}
	if err := atomicfile.WriteFile(filepath.Join(b.stateDir, healthFile), []byte(v), 0o644); err != nil {
		b.log.Warn("writing the health file", "err", err)
	}
}

// leave hands over before a replica stops: it tells keepalived it is
// unhealthy (so the gateway address moves), then asks the edge to make
// another replica active and waits, at most timeout, until the edge confirms.
func (b *beat) leave(timeout time.Duration) {
	b.writeHealth(false)
	b.mu.Lock()
	b.leaving = true
	wasActive := b.active
	b.sendLocked(time.Now())
	b.mu.Unlock()
	if !wasActive {
		return
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case <-deadline.C:
			b.log.Warn("the edge did not confirm the handover in time", "waited", timeout)
			return
		case <-b.changed:
			b.mu.Lock()
			active := b.active
			b.mu.Unlock()
			if !active {
				b.log.Info("handed over to a standby replica")
				return
			}
		}
	}
}

// Close stops the heartbeats and marks the agent unhealthy.
func (b *beat) Close() {
	close(b.stop)
	b.mu.Lock()
	if b.conn != nil {
		b.conn.Close()
	}
	b.healthy, b.active = false, false
	b.mu.Unlock()
	b.done.Wait()
	b.writeHealth(false)
}
