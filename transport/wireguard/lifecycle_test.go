package wireguard

import (
	"errors"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// TestCloseDuringTraffic closes both endpoints while batches are being
// forwarded: Close must return promptly, leave no goroutine behind, and
// later Sends must fail with ErrClosed.
func TestCloseDuringTraffic(t *testing.T) {
	goroutineLeakCheck(t)
	fwd := &forwarder{bufs: make([][]byte, 0, 128)}
	ka, kb := mustKey(t), mustKey(t)
	a, err := New(Config{PrivateKey: ka, Bind: conn.NewStdNetBind(), Receiver: ReceiverFunc(func([]Packet) {})})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{PrivateKey: kb, Bind: conn.NewStdNetBind(), Receiver: fwd})
	if err != nil {
		t.Fatal(err)
	}
	fwd.e = b
	if _, err := b.AddPeer(PeerConfig{PublicKey: ka.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	sa, err := a.AddPeer(PeerConfig{PublicKey: kb.PublicKey(), Endpoint: addrPort("127.0.0.1", b.Port())})
	if err != nil {
		t.Fatal(err)
	}
	sendUntil(t, a, sa, ipv4Packet(100))
	pkt := ipv4Packet(1420)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bufs := make([][]byte, 64)
		for i := range bufs {
			bufs[i] = make([]byte, Headroom+len(pkt), MaxMessageSize)
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := range bufs {
				copy(bufs[i][Headroom:], pkt)
			}
			if err := a.Send(sa, bufs, Headroom); errors.Is(err, ErrClosed) {
				<-stop
				return
			}
		}
	}()
	waitFor(t, 5*time.Second, "forwarded traffic", func() bool { return sa.Stats().TxPackets > 1000 })
	done := make(chan struct{})
	go func() {
		b.Close()
		a.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	close(stop)
	wg.Wait()
	if err := a.Send(sa, [][]byte{packetBuf(pkt)}, Headroom); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrSessionRemoved) {
		t.Fatalf("Send after Close: %v", err)
	}
}

// TestRoaming: when the wireguard-go peer moves to another UDP port, the
// endpoint follows it on the first authenticated packet.
func TestRoaming(t *testing.T) {
	goroutineLeakCheck(t)
	agentKey := mustKey(t)
	r := &echoReflector{}
	e := newTestEndpoint(t, Config{Bind: conn.NewStdNetBind(), Receiver: r})
	r.e = e
	sess, err := e.AddPeer(PeerConfig{PublicKey: agentKey.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	dev, tn := newWGDevice(t, conn.NewStdNetBind(), agentKey, "public_key="+hexKey(e.PublicKey())+
		"\nendpoint="+addrPort("127.0.0.1", e.Port()).String()+"\nallowed_ip=0.0.0.0/0\n")
	pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)
	before := sess.RemoteAddr()
	if err := dev.IpcSet("listen_port=0\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "new port", func() bool {
		pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)
		return sess.RemoteAddr() != before
	})
	if got := sess.RemoteAddr().Port(); got != wgListenPort(t, dev) {
		t.Fatalf("session endpoint port %d, device listens on %d", got, wgListenPort(t, dev))
	}
}

// TestKeepalives: a peer that receives data and has nothing to send answers
// with a keepalive after KeepaliveTimeout, and PersistentKeepalive sends
// keepalives on an idle session.
func TestKeepalives(t *testing.T) {
	goroutineLeakCheck(t)
	fast := Timers{Tick: 10 * time.Millisecond, KeepaliveTimeout: 150 * time.Millisecond}
	p := newPair(t, fast, fast, PresharedKey{}, PresharedKey{})
	sendUntil(t, p.a, p.sa, ipv4Packet(60))
	waitFor(t, 2*time.Second, "responder confirmed", p.sb.Established)

	// Passive: B got data and sent nothing, so it sends a keepalive.
	if err := p.a.Send(p.sa, [][]byte{packetBuf(ipv4Packet(60))}, Headroom); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	waitFor(t, 2*time.Second, "passive keepalive", func() bool { return p.sa.LastReceived().After(sent) })
	if d := time.Since(sent); d < 100*time.Millisecond {
		t.Fatalf("keepalive after %v, before KeepaliveTimeout", d)
	}
	if got := p.sb.Stats().TxPackets; got != 0 {
		t.Fatalf("keepalives counted as data: %d packets", got)
	}

	// Persistent: B keeps sending keepalives on an idle session.
	if _, err := p.b.AddPeer(PeerConfig{PublicKey: p.a.PublicKey(), PersistentKeepalive: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		last := p.sa.LastReceived()
		waitFor(t, 2*time.Second, "persistent keepalive", func() bool { return p.sa.LastReceived().After(last) })
	}
}
