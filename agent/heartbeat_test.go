package agent

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/transport/heartbeat"
)

func TestHeartbeatTarget(t *testing.T) {
	edge4, edge6 := mpa("100.96.0.1"), mpa("fd00:5359:6564:6765::1")
	for _, tc := range []struct {
		name       string
		src4, src6 netip.Addr
		src, dst   netip.Addr
	}{
		{"IPv4 site address", mpa("192.0.2.10"), mpa("2001:db8:1::10"), mpa("192.0.2.10"), edge4},
		{"IPv6 site address only", netip.Addr{}, mpa("2001:db8:1::10"), mpa("2001:db8:1::10"), edge6},
		{"no site address: the kernel picks", netip.Addr{}, netip.Addr{}, netip.Addr{}, edge4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := heartbeatTarget(tc.src4, tc.src6, edge4, edge6)
			if src != tc.src || dst != tc.dst {
				t.Errorf("heartbeatTarget = %v → %v, want %v → %v", src, dst, tc.src, tc.dst)
			}
		})
	}
}

func TestWithHost(t *testing.T) {
	edge6 := mpa("fd00:5359:6564:6765::1")
	if got := withHost([]netip.Prefix{mpp("10.0.0.0/8")}, edge6); len(got) != 2 || got[1] != netip.PrefixFrom(edge6, 128) {
		t.Errorf("withHost = %v", got)
	}
	if got := withHost([]netip.Prefix{mpp("fd00::/8")}, edge6); len(got) != 1 {
		t.Errorf("withHost added a covered route: %v", got)
	}
}

// fakeEdge answers heartbeat probes on a loopback address while answer is set.
type fakeEdge struct {
	conn   *net.UDPConn
	answer atomic.Bool
	probes atomic.Int64
}

func newFakeEdge(t *testing.T, addr string) *fakeEdge {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("no loopback %s: %v", addr, err)
	}
	e := &fakeEdge{conn: c}
	e.answer.Store(true)
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m, err := heartbeat.Parse(buf[:n])
			if err != nil || m.Type != heartbeat.Probe {
				continue
			}
			e.probes.Add(1)
			if e.answer.Load() {
				c.WriteToUDPAddrPort(heartbeat.Message{Type: heartbeat.Reply, Flags: heartbeat.Active, Seq: m.Seq}.Append(nil), from)
			}
		}
	}()
	return e
}

func (e *fakeEdge) addrPort() netip.AddrPort { return e.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// newTestBeat makes a connector's heartbeats at edge, from src (invalid: the
// kernel picks), that the test ticks itself, and counts the calls to lost.
func newTestBeat(t *testing.T, src netip.Addr, edge *fakeEdge) (*beat, *atomic.Int64) {
	t.Helper()
	var lost atomic.Int64
	b := makeBeat(slog.New(slog.DiscardHandler), t.TempDir(), heartbeatConfig{replica: true, priority: 100}, func() { lost.Add(1) }, edge.addrPort().Port())
	t.Cleanup(b.Close)
	b.aim(src, edge.addrPort().Addr())
	return b, &lost
}

// tickUntil ticks b every interval until cond holds.
func tickUntil(t *testing.T, b *beat, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(heartbeat.DefaultInterval) {
		b.tick(time.Now())
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// TestHeartbeatsOverIPv6AndWithoutSource: a connector with IPv6 site
// addresses only sends its heartbeats over IPv6, and one with no site
// address at all still sends them, from an address the kernel picks.
func TestHeartbeatsOverIPv6AndWithoutSource(t *testing.T) {
	for _, tc := range []struct {
		name, edge string
		src        netip.Addr
		want       string // the status's source
	}{
		{"IPv6 site address", "[::1]:0", mpa("::1"), "::1"},
		{"no site address, IPv4", "127.0.0.1:0", netip.Addr{}, "127.0.0.1"},
		{"no site address, IPv6", "[::1]:0", netip.Addr{}, "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edge := newFakeEdge(t, tc.edge)
			b, _ := newTestBeat(t, tc.src, edge)
			tickUntil(t, b, "the edge's answers make the agent healthy", 5*time.Second, b.isHealthy)
			b.mu.Lock()
			st := b.statusLocked(time.Now())
			b.mu.Unlock()
			if st.Source != tc.want || !st.Active {
				t.Errorf("status = %+v; want source %s, active", st, tc.want)
			}
		})
	}
}

// TestHeartbeatsSurviveTheAgentsOwnStall: when the agent itself stalls (its
// next tick comes seconds late), the edge had no probe to answer meanwhile:
// that is no lost edge, so the agent neither turns unhealthy nor restarts
// its handshake. An edge that stops answering is still noticed.
func TestHeartbeatsSurviveTheAgentsOwnStall(t *testing.T) {
	edge := newFakeEdge(t, "127.0.0.1:0")
	b, lost := newTestBeat(t, mpa("127.0.0.1"), edge)
	tickUntil(t, b, "healthy", 5*time.Second, b.isHealthy)

	b.tick(time.Now().Add(2 * time.Second)) // the first tick after a 2 s SIGSTOP
	if !b.isHealthy() || lost.Load() != 0 {
		t.Fatalf("after its own stall the agent is healthy=%v and restarted its handshake %d times", b.isHealthy(), lost.Load())
	}

	edge.answer.Store(false)
	stopped := time.Now()
	tickUntil(t, b, "an edge that stops answering is noticed", 3*time.Second, func() bool { return !b.isHealthy() })
	t.Logf("unhealthy %v after the edge stopped answering", time.Since(stopped).Round(10*time.Millisecond))
	tickUntil(t, b, "the handshake restarts", 3*time.Second, func() bool { return lost.Load() > 0 })
}

// TestBeatFollowsDraining: the first reply that says the edge drains calls
// drained once (not at every reply), the edge stays healthy and the
// connector's health file untouched (a draining edge is no reason for
// keepalived to move the gateway), and a reply without the flag (the edge
// running again) clears it.
func TestBeatFollowsDraining(t *testing.T) {
	var drained atomic.Int32
	dir := t.TempDir()
	hc := heartbeatConfig{replica: true, noSocket: true, inject: func([]byte) {}, drained: func() { drained.Add(1) }}
	b := makeBeat(slog.New(slog.DiscardHandler), dir, hc, nil, heartbeat.Port)
	b.aim(netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("100.111.255.254"))
	reply := func(f heartbeat.Flags) {
		b.tick(time.Now())
		b.mu.Lock()
		seq := b.seq
		b.mu.Unlock()
		b.gotReply(heartbeat.Message{Type: heartbeat.Reply, Flags: f, Seq: seq})
		b.tick(time.Now())
	}
	reply(heartbeat.Active)
	if b.isDraining() || drained.Load() != 0 || !b.isHealthy() {
		t.Fatalf("before the drain: draining %v, drained %d, healthy %v", b.isDraining(), drained.Load(), b.isHealthy())
	}
	for range 3 {
		reply(heartbeat.Active | heartbeat.Draining)
	}
	if !b.isDraining() || drained.Load() != 1 || !b.isHealthy() {
		t.Errorf("while the edge drains: draining %v, drained called %d times (want 1), healthy %v", b.isDraining(), drained.Load(), b.isHealthy())
	}
	if h, err := os.ReadFile(filepath.Join(dir, healthFile)); err != nil || string(h) != "0\n" {
		t.Errorf("health file while the edge drains = %q, %v; want healthy", h, err)
	}
	reply(heartbeat.Active)
	if b.isDraining() {
		t.Error("a reply without Draining left the edge draining")
	}
}
