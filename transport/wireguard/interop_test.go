package wireguard

import (
	"fmt"
	"net"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// TestInteropResponder: a wireguard-go device initiates to the endpoint over
// real UDP on 127.0.0.1, pings through it, and keeps working across rekeys
// that the endpoint forces and that its short RekeyAfterTime triggers.
func TestInteropResponder(t *testing.T) {
	goroutineLeakCheck(t)
	agentKey := mustKey(t)
	r := &echoReflector{}
	e := newTestEndpoint(t, Config{
		Bind:     conn.NewStdNetBind(),
		Receiver: r,
		Timers:   Timers{RekeyAfterTime: 1500 * time.Millisecond, Tick: 20 * time.Millisecond},
	})
	r.e = e
	sess, err := e.AddPeer(PeerConfig{PublicKey: agentKey.PublicKey(), Value: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	pub := e.PublicKey()
	_, tn := newWGDevice(t, conn.NewStdNetBind(), agentKey, fmt.Sprintf(
		"public_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=0.0.0.0/0\n", hexKey(pub), e.Port()))

	pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)
	waitFor(t, 2*time.Second, "session counters", func() bool {
		st := sess.Stats()
		return !sess.LastHandshake().IsZero() && st.RxPackets > 0 && st.TxPackets > 0 && st.RxBytes > 0 && st.TxBytes > 0
	})
	if got := sess.Value(); got != "agent" {
		t.Fatalf("Value() = %v", got)
	}
	if !sess.RemoteAddr().Addr().IsLoopback() {
		t.Fatalf("RemoteAddr() = %v", sess.RemoteAddr())
	}

	// Forced rekey with the endpoint as initiator.
	before := e.Stats().HandshakesCompleted
	first := sess.current.Load()
	e.Handshake(sess)
	waitFor(t, 5*time.Second, "forced handshake", func() bool {
		kp := sess.current.Load()
		return kp != nil && kp != first && kp.isInitiator
	})
	pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)

	// RekeyAfterTime: the endpoint is now the initiator, so sending after
	// 1.5s starts another handshake by itself.
	second := sess.current.Load()
	waitFor(t, 8*time.Second, "time-based rekey", func() bool {
		pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)
		return sess.current.Load() != second
	})
	pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)
	if got := e.Stats().HandshakesCompleted; got < before+2 {
		t.Fatalf("handshakes completed %d -> %d, want at least 2 more", before, got)
	}
}

// TestInteropInitiator: the endpoint initiates to a wireguard-go device that
// only knows its key, over IPv4 and IPv6 loopback, then traffic flows both
// ways.
func TestInteropInitiator(t *testing.T) {
	for _, lo := range []string{"127.0.0.1", "::1"} {
		t.Run(lo, func(t *testing.T) {
			if l, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addrPort(lo, 0))); err != nil {
				t.Skipf("no %s: %v", lo, err)
			} else {
				l.Close()
			}
			testInteropInitiator(t, lo)
		})
	}
}

func testInteropInitiator(t *testing.T, lo string) {
	goroutineLeakCheck(t)
	agentKey := mustKey(t)
	got := make(chan []byte, 16)
	e := newTestEndpoint(t, Config{
		Bind: conn.NewStdNetBind(),
		Receiver: ReceiverFunc(func(pkts []Packet) {
			for _, p := range pkts {
				select {
				case got <- append([]byte(nil), p.Data()...):
				default:
				}
			}
		}),
		Timers: Timers{Tick: 20 * time.Millisecond},
	})
	pub := e.PublicKey()
	dev, tn := newWGDevice(t, conn.NewStdNetBind(), agentKey, fmt.Sprintf(
		"public_key=%s\nallowed_ip=0.0.0.0/0\n", hexKey(pub)))
	port := wgListenPort(t, dev)
	sess, err := e.AddPeer(PeerConfig{PublicKey: agentKey.PublicKey(), Endpoint: addrPort(lo, port)})
	if err != nil {
		t.Fatal(err)
	}
	// The first Send starts the handshake; retry until a key is there.
	waitFor(t, 5*time.Second, "session as initiator", func() bool {
		pkt := tuntest.Ping(agentIP, edgeIP)
		buf := make([]byte, Headroom+len(pkt), Headroom+len(pkt)+Tailroom)
		copy(buf[Headroom:], pkt)
		return e.Send(sess, [][]byte{buf}, Headroom) == nil
	})
	select {
	case pkt := <-tn.Inbound:
		if !makeEchoReply(pkt) {
			t.Fatalf("device got %x, want an echo request", pkt)
		}
		tn.Outbound <- pkt
	case <-time.After(5 * time.Second):
		t.Fatal("device got nothing")
	}
	select {
	case pkt := <-got:
		if !isEchoReply(pkt, agentIP) {
			t.Fatalf("endpoint got %x, want an echo reply", pkt)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("endpoint got no reply")
	}
	if !sess.current.Load().isInitiator {
		t.Fatal("endpoint is not the initiator of its session")
	}
	if got := sess.RemoteAddr(); got != addrPort(lo, port) {
		t.Fatalf("RemoteAddr() = %v, want %v", got, addrPort(lo, port))
	}
}
