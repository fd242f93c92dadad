package wireguard

import (
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn/bindtest"
)

// TestIdleSessionsAreNotPolled: once a session is up and silent, the timer
// goroutine looks at it about once per KeepaliveTimeout, not once per tick
// as a full pass did.
func TestIdleSessionsAreNotPolled(t *testing.T) {
	goroutineLeakCheck(t)
	fast := Timers{Tick: 2 * time.Millisecond, KeepaliveTimeout: 200 * time.Millisecond}
	p := newPair(t, fast, fast, PresharedKey{}, PresharedKey{})
	sendUntil(t, p.a, p.sa, ipv4Packet(60))
	// B answers the data with a passive keepalive; after that both are idle.
	waitFor(t, 5*time.Second, "passive keepalive", func() bool {
		return p.sa.lastRecv.Load() >= p.sa.lastDataSent.Load()
	})
	time.Sleep(50 * time.Millisecond)
	runs := func() uint64 { return p.a.timerRuns.Load() + p.b.timerRuns.Load() }
	r0, t0 := runs(), time.Now()
	time.Sleep(600 * time.Millisecond)
	got, ticks := runs()-r0, uint64(time.Since(t0)/fast.Tick)
	// Two sessions, each looked at every 198 ms: about 6; a pass per tick
	// would make 2*ticks, about 600.
	t.Logf("timers ran %d times for 2 idle sessions over %d ticks", got, ticks)
	if got > 20 {
		t.Fatalf("timers ran %d times for 2 idle sessions over %d ticks, want at most 20", got, ticks)
	}
	if !p.sa.Established() || !p.sb.Established() {
		t.Fatal("idle sessions lost their keys")
	}
}

// TestHandshakeRetransmitAndGiveUp: an unanswered initiation is sent again
// every RekeyTimeout (plus jitter) until RekeyAttemptTime, then the attempt
// and its queued packets are dropped and nothing more is sent.
func TestHandshakeRetransmitAndGiveUp(t *testing.T) {
	goroutineLeakCheck(t)
	fast := Timers{Tick: 5 * time.Millisecond, RekeyTimeout: 60 * time.Millisecond, RekeyAttemptTime: 400 * time.Millisecond}
	binds := bindtest.NewChannelBinds()
	a := newTestEndpoint(t, Config{Bind: binds[0], Receiver: newCollector(), Timers: fast})
	b := newTestEndpoint(t, Config{Bind: binds[1], Receiver: newCollector(), Timers: fast}) // does not know A
	sa, err := a.AddPeer(PeerConfig{PublicKey: b.PublicKey(), Endpoint: addrPort("127.0.0.1", b.Port())})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.Send(sa, [][]byte{packetBuf(ipv4Packet(60))}, Headroom); err != nil {
		t.Fatal(err)
	}
	gaveUp := func() bool {
		sa.mu.Lock()
		defer sa.mu.Unlock()
		return !sa.hs.inFlight() && a.Stats().HandshakesInitiated > 0
	}
	waitFor(t, 5*time.Second, "attempt given up", gaveUp)
	elapsed := time.Since(start)
	sent := a.Stats().HandshakesInitiated
	// Never sooner than RekeyTimeout apart, and not given up before
	// RekeyAttemptTime: at most 1+400/60 initiations.
	if sent < 2 || sent > 7 {
		t.Fatalf("%d initiations in the attempt, want 2..7", sent)
	}
	if elapsed < fast.RekeyAttemptTime-fast.Tick {
		t.Fatalf("gave up after %v, before RekeyAttemptTime %v", elapsed, fast.RekeyAttemptTime)
	}
	sa.stagedMu.Lock()
	staged := len(sa.staged)
	sa.stagedMu.Unlock()
	if staged != 0 || a.index.inUse() != 0 {
		t.Fatalf("after giving up: %d packets queued, %d indices in use", staged, a.index.inUse())
	}
	time.Sleep(3 * fast.RekeyTimeout)
	if got := a.Stats().HandshakesInitiated; got != sent {
		t.Fatalf("%d initiations after giving up", got-sent)
	}
	waitFor(t, 5*time.Second, "initiations refused", func() bool { return b.Stats().DroppedUnauthorized >= 2 })
}

// TestHandshakeTooSoon: a handshake asked for less than RekeyTimeout after
// the last initiation waits until RekeyTimeout has passed, then happens.
func TestHandshakeTooSoon(t *testing.T) {
	goroutineLeakCheck(t)
	fast := Timers{Tick: 5 * time.Millisecond, RekeyTimeout: 300 * time.Millisecond}
	p := newPair(t, fast, fast, PresharedKey{}, PresharedKey{})
	sendUntil(t, p.a, p.sa, ipv4Packet(60))
	lastInit := func() time.Duration {
		p.sa.mu.Lock()
		defer p.sa.mu.Unlock()
		return time.Duration(p.sa.hs.lastInitSent)
	}
	first := lastInit()
	p.a.Handshake(p.sa)
	waitFor(t, 5*time.Second, "initiation after the deferral", func() bool { return lastInit() != first })
	if d := lastInit() - first; d < fast.RekeyTimeout {
		t.Fatalf("second initiation %v after the first, want at least RekeyTimeout %v", d, fast.RekeyTimeout)
	}
	waitFor(t, 5*time.Second, "second handshake", func() bool { return p.a.Stats().HandshakesCompleted >= 2 })
}

// TestDeadPeerHandshake: data sent and nothing heard back for
// KeepaliveTimeout+RekeyTimeout makes the sender start a new handshake.
func TestDeadPeerHandshake(t *testing.T) {
	goroutineLeakCheck(t)
	fast := Timers{Tick: 5 * time.Millisecond, KeepaliveTimeout: 150 * time.Millisecond, RekeyTimeout: 100 * time.Millisecond}
	p := newPair(t, fast, fast, PresharedKey{}, PresharedKey{})
	sendUntil(t, p.a, p.sa, ipv4Packet(60))
	waitFor(t, 5*time.Second, "passive keepalive", func() bool {
		return p.sa.lastRecv.Load() >= p.sa.lastDataSent.Load()
	})
	before := p.a.Stats().HandshakesInitiated
	p.b.RemovePeer(p.a.PublicKey()) // B goes silent
	sent := time.Now()
	if err := p.a.Send(p.sa, [][]byte{packetBuf(ipv4Packet(60))}, Headroom); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "new handshake", func() bool { return p.a.Stats().HandshakesInitiated > before })
	if d, want := time.Since(sent), fast.KeepaliveTimeout+fast.RekeyTimeout-fast.Tick; d < want {
		t.Fatalf("new handshake %v after the unanswered data, want at least %v", d, want)
	}
}
