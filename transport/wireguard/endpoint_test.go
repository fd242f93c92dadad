package wireguard

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// collector records copies of received packets.
type collector struct{ ch chan []byte }

func newCollector() *collector { return &collector{ch: make(chan []byte, 1024)} }

func (c *collector) Receive(pkts []Packet) {
	for _, p := range pkts {
		select {
		case c.ch <- append([]byte(nil), p.Data()...):
		default:
		}
	}
}

func (c *collector) expect(t testing.TB, want []byte) {
	t.Helper()
	select {
	case got := <-c.ch:
		if string(got) != string(want) {
			t.Fatalf("received %x, want %x", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet received")
	}
}

func packetBuf(pkt []byte) []byte {
	buf := make([]byte, Headroom+len(pkt), Headroom+len(pkt)+Tailroom)
	copy(buf[Headroom:], pkt)
	return buf
}

type pair struct {
	a, b   *Endpoint
	sa, sb *Session // sa: A's session for B; sb: B's session for A
	ca, cb *collector
}

// newPair connects two endpoints over bindtest; A knows B's address.
func newPair(t *testing.T, ta, tb Timers, pskA, pskB PresharedKey) *pair {
	t.Helper()
	binds := bindtest.NewChannelBinds()
	p := &pair{ca: newCollector(), cb: newCollector()}
	p.a = newTestEndpoint(t, Config{Bind: binds[0], Receiver: p.ca, Timers: ta})
	p.b = newTestEndpoint(t, Config{Bind: binds[1], Receiver: p.cb, Timers: tb})
	var err error
	if p.sb, err = p.b.AddPeer(PeerConfig{PublicKey: p.a.PublicKey(), PresharedKey: pskB}); err != nil {
		t.Fatal(err)
	}
	if p.sa, err = p.a.AddPeer(PeerConfig{PublicKey: p.b.PublicKey(), PresharedKey: pskA,
		Endpoint: addrPort("127.0.0.1", p.b.Port())}); err != nil {
		t.Fatal(err)
	}
	return p
}

// sendUntil sends pkt (queued until the handshake completes) and waits for
// the session to be established.
func sendUntil(t testing.TB, e *Endpoint, s *Session, pkt []byte) {
	t.Helper()
	if err := e.Send(s, [][]byte{packetBuf(pkt)}, Headroom); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "usable session", s.Established)
}

func TestPairBothWays(t *testing.T) {
	goroutineLeakCheck(t)
	for _, tc := range []struct {
		name       string
		pskA, pskB PresharedKey
		ok         bool
	}{
		{name: "no psk", ok: true},
		{name: "psk", pskA: PresharedKey{1, 2, 3}, pskB: PresharedKey{1, 2, 3}, ok: true},
		{name: "psk mismatch", pskA: PresharedKey{1}, pskB: PresharedKey{2}, ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast := Timers{Tick: 10 * time.Millisecond, RekeyTimeout: 200 * time.Millisecond}
			p := newPair(t, fast, fast, tc.pskA, tc.pskB)
			ping := tuntest.Ping(agentIP, edgeIP)
			if !tc.ok {
				_ = p.a.Send(p.sa, [][]byte{packetBuf(ping)}, Headroom)
				waitFor(t, 5*time.Second, "auth failure", func() bool { return p.a.Stats().DroppedAuth > 0 })
				if p.sa.Established() {
					t.Fatal("session established despite psk mismatch")
				}
				return
			}
			sendUntil(t, p.a, p.sa, ping)
			p.cb.expect(t, ping)
			pong := tuntest.Ping(edgeIP, agentIP)
			waitFor(t, 5*time.Second, "responder confirmed", p.sb.Established)
			if err := p.b.Send(p.sb, [][]byte{packetBuf(pong)}, Headroom); err != nil {
				t.Fatal(err)
			}
			p.ca.expect(t, pong)
			if p.sb.LastHandshake().IsZero() || p.sa.LastHandshake().IsZero() {
				t.Fatal("last handshake not recorded")
			}
		})
	}
}

func TestRekeyAfterMessages(t *testing.T) {
	goroutineLeakCheck(t)
	fast := Timers{Tick: 10 * time.Millisecond, RekeyAfterMessages: 20, RekeyTimeout: 100 * time.Millisecond}
	p := newPair(t, fast, fast, PresharedKey{}, PresharedKey{})
	ping := tuntest.Ping(agentIP, edgeIP)
	sendUntil(t, p.a, p.sa, ping)
	first := p.sa.current.Load()
	waitFor(t, 5*time.Second, "rekey after messages", func() bool {
		_ = p.a.Send(p.sa, [][]byte{packetBuf(ping)}, Headroom)
		return p.sa.current.Load() != first
	})
	for len(p.cb.ch) > 0 {
		<-p.cb.ch
	}
	sendUntil(t, p.a, p.sa, ping)
	p.cb.expect(t, ping)
}

func TestRejectAfterTime(t *testing.T) {
	goroutineLeakCheck(t)
	fast := Timers{Tick: 10 * time.Millisecond, RejectAfterTime: 300 * time.Millisecond, RekeyAfterTime: time.Hour, RekeyTimeout: 100 * time.Millisecond}
	p := newPair(t, fast, fast, PresharedKey{}, PresharedKey{})
	ping := tuntest.Ping(agentIP, edgeIP)
	sendUntil(t, p.a, p.sa, ping)
	waitFor(t, 5*time.Second, "keys to expire", func() bool { return !p.sb.Established() && !p.sa.Established() })
	waitFor(t, 5*time.Second, "expired indices freed", func() bool { return p.a.index.inUse()+p.b.index.inUse() == 0 })
	if err := p.a.Send(p.sa, [][]byte{packetBuf(ping)}, Headroom); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "new session after expiry", p.sa.Established)
}

func TestPeerDirectory(t *testing.T) {
	goroutineLeakCheck(t)
	fast := Timers{Tick: 10 * time.Millisecond, RekeyTimeout: 100 * time.Millisecond}
	binds := bindtest.NewChannelBinds()
	ca, cb := newCollector(), newCollector()
	a := newTestEndpoint(t, Config{Bind: binds[0], Receiver: ca, Timers: fast})
	b := newTestEndpoint(t, Config{Bind: binds[1], Receiver: cb, Timers: fast})
	sa, err := a.AddPeer(PeerConfig{PublicKey: b.PublicKey(), Endpoint: addrPort("127.0.0.1", b.Port())})
	if err != nil {
		t.Fatal(err)
	}
	ping := tuntest.Ping(agentIP, edgeIP)

	// B does not know A yet: its initiations are refused.
	_ = a.Send(sa, [][]byte{packetBuf(ping)}, Headroom)
	waitFor(t, 5*time.Second, "unauthorized drop", func() bool { return b.Stats().DroppedUnauthorized > 0 })

	// Authorizing A lets it in at once.
	if err := b.SetPeers([]PeerConfig{{PublicKey: a.PublicKey(), Value: 7}}); err != nil {
		t.Fatal(err)
	}
	sendUntil(t, a, sa, ping)
	cb.expect(t, ping)
	cb.expect(t, ping) // the first one, queued while B refused A
	sb := b.Peer(a.PublicKey())
	if sb == nil || sb.Value() != 7 {
		t.Fatalf("Peer() = %v", sb)
	}

	// Removing A stops its session at once.
	if err := b.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(sb, [][]byte{packetBuf(ping)}, Headroom); !errors.Is(err, ErrSessionRemoved) {
		t.Fatalf("Send on removed session: %v", err)
	}
	before := b.Stats().DroppedUnknownIndex
	if err := a.Send(sa, [][]byte{packetBuf(ping)}, Headroom); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "drop after removal", func() bool { return b.Stats().DroppedUnknownIndex > before })
	select {
	case pkt := <-cb.ch:
		t.Fatalf("removed peer's packet delivered: %x", pkt)
	default:
	}
	if got := b.index.inUse(); got != 0 {
		t.Fatalf("%d indices in use after removal", got)
	}
}

// TestMalformed sends broken messages over real UDP and checks that each
// is dropped and counted while the established session keeps working.
func TestMalformed(t *testing.T) {
	goroutineLeakCheck(t)
	agentKey := mustKey(t)
	c := newCollector()
	e := newTestEndpoint(t, Config{Bind: conn.NewStdNetBind(), Receiver: c})
	uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addrPort("127.0.0.1", 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	dst := net.UDPAddrFromAddrPort(addrPort("127.0.0.1", e.Port()))
	send := func(b []byte) {
		t.Helper()
		if _, err := uc.WriteToUDP(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	initiation := make([]byte, initiationSize)
	initiation[0] = msgTypeInitiation
	transport := make([]byte, 64)
	transport[0] = msgTypeTransport
	cases := []struct {
		name string
		msg  []byte
		stat func(Stats) uint64
	}{
		{"empty type", []byte{0, 0, 0, 0, 1}, func(s Stats) uint64 { return s.DroppedMalformed }},
		{"unknown type", []byte{9, 0, 0, 0, 1, 2, 3}, func(s Stats) uint64 { return s.DroppedMalformed }},
		{"truncated initiation", initiation[:100], func(s Stats) uint64 { return s.DroppedMalformed }},
		{"oversized initiation", append(initiation, 0), func(s Stats) uint64 { return s.DroppedMalformed }},
		{"bad mac1", initiation, func(s Stats) uint64 { return s.DroppedMAC1 }},
		{"truncated transport", transport[:20], func(s Stats) uint64 { return s.DroppedMalformed }},
		{"unknown index", transport, func(s Stats) uint64 { return s.DroppedUnknownIndex }},
		{"reserved bits", []byte{4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, func(s Stats) uint64 { return s.DroppedMalformed }},
	}
	for _, tc := range cases {
		before := tc.stat(e.Stats())
		send(tc.msg)
		waitFor(t, 2*time.Second, tc.name, func() bool { return tc.stat(e.Stats()) > before })
	}

	// A real session through a wireguard-go device, then a replayed and a
	// forged transport message on it.
	sess, err := e.AddPeer(PeerConfig{PublicKey: agentKey.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	_, tn := newWGDevice(t, conn.NewStdNetBind(), agentKey, "public_key="+hexKey(e.PublicKey())+
		"\nendpoint="+dst.String()+"\nallowed_ip=0.0.0.0/0\n")
	ping := tuntest.Ping(edgeIP, agentIP)
	tn.Outbound <- ping
	c.expect(t, ping)
	waitFor(t, 2*time.Second, "confirmed", sess.Established)
	kp := sess.current.Load()

	// Forge: valid index, garbage ciphertext.
	forged := make([]byte, 64)
	putTransportHeader(forged, kp.localIndex, 999)
	before := e.Stats()
	send(forged)
	waitFor(t, 2*time.Second, "auth drop", func() bool { return e.Stats().DroppedAuth > before.DroppedAuth })

	// Replay: seal a message with the session's own receive key, deliver it
	// twice.
	pkt := tuntest.Ping(edgeIP, agentIP)
	msg := make([]byte, transportHeaderSize, transportHeaderSize+len(pkt)+16)
	putTransportHeader(msg, kp.localIndex, 1000) // ahead of the device, inside the window
	var nonce [12]byte
	binary.LittleEndian.PutUint64(nonce[4:], 1000)
	msg = kp.recv.Seal(msg, nonce[:], pkt, nil)
	send(msg)
	c.expect(t, pkt)
	send(msg)
	waitFor(t, 2*time.Second, "replay drop", func() bool { return e.Stats().DroppedReplay > before.DroppedReplay })

	// Still works.
	tn.Outbound <- ping
	c.expect(t, ping)
}

// TestResolveEndpoint: an IPv4 endpoint comes back unmapped (as UAPI and
// PeerConfig take it), an IPv6 one as it is, a malformed one as an error.
func TestResolveEndpoint(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1:51820": "127.0.0.1:51820", "[::1]:443": "[::1]:443"} {
		got, err := ResolveEndpoint(in)
		if err != nil || got.String() != want || (got.Addr().Is4In6()) {
			t.Errorf("ResolveEndpoint(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ResolveEndpoint("no-port"); err == nil {
		t.Error("ResolveEndpoint without a port: no error")
	}
}
