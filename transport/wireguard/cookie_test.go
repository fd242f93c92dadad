package wireguard

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// TestCookieUnderLoad: under load the responder answers initiations
// without a valid mac2 with a cookie reply; the initiator's retry carries
// mac2 and completes the handshake.
func TestCookieUnderLoad(t *testing.T) {
	goroutineLeakCheck(t)
	fast := Timers{Tick: 10 * time.Millisecond, RekeyTimeout: 150 * time.Millisecond}
	p := newPair(t, fast, fast, PresharedKey{}, PresharedKey{})
	p.b.forceUnderLoad.Store(true)
	ping := tuntest.Ping(agentIP, edgeIP)
	sendUntil(t, p.a, p.sa, ping)
	p.cb.expect(t, ping)
	if got := p.b.Stats().CookieRepliesSent; got == 0 {
		t.Fatal("no cookie reply sent under load")
	}
}

// TestCookieInteropUnderLoad: the same with a wireguard-go initiator, which
// retries after its fixed 5s RekeyTimeout.
func TestCookieInteropUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for wireguard-go's 5s retransmission")
	}
	goroutineLeakCheck(t)
	agentKey := mustKey(t)
	r := &echoReflector{}
	e := newTestEndpoint(t, Config{Bind: conn.NewStdNetBind(), Receiver: r})
	r.e = e
	e.forceUnderLoad.Store(true)
	if _, err := e.AddPeer(PeerConfig{PublicKey: agentKey.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	_, tn := newWGDevice(t, conn.NewStdNetBind(), agentKey, "public_key="+hexKey(e.PublicKey())+
		"\nendpoint="+addrPort("127.0.0.1", e.Port()).String()+"\nallowed_ip=0.0.0.0/0\n")
	pingThroughDevice(t, tn, edgeIP, agentIP, 12*time.Second)
	if got := e.Stats().CookieRepliesSent; got == 0 {
		t.Fatal("no cookie reply sent under load")
	}
}

// floodInitiations returns initiations from unknown keys with a valid mac1.
func floodInitiations(t testing.TB, pub PublicKey, n int) [][]byte {
	mac1Key := labelHash(wgLabelMAC1, pub[:])
	out := make([][]byte, n)
	for i := range out {
		m := make([]byte, initiationSize)
		if _, err := rand.Read(m[4:116]); err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(m, msgTypeInitiation)
		var mac [macSize]byte
		mac16(&mac, mac1Key[:], m[:116])
		copy(m[116:], mac[:])
		out[i] = m
	}
	return out
}

// TestHandshakeFlood: a flood of initiations from unknown keys (about
// 20,000/s, far more than the CPU could answer with Diffie-Hellman) does
// not stop an established session, and the flood is counted. The flood is
// paced: an unpaced local flood only measures how fast the kernel fills the
// socket buffer, which no endpoint design can change.
func TestHandshakeFlood(t *testing.T) {
	goroutineLeakCheck(t)
	agentKey := mustKey(t)
	r := &echoReflector{}
	e := newTestEndpoint(t, Config{Bind: conn.NewStdNetBind(), Receiver: r})
	r.e = e
	if _, err := e.AddPeer(PeerConfig{PublicKey: agentKey.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	dst := addrPort("127.0.0.1", e.Port())
	_, tn := newWGDevice(t, conn.NewStdNetBind(), agentKey, "public_key="+hexKey(e.PublicKey())+
		"\nendpoint="+dst.String()+"\nallowed_ip=0.0.0.0/0\n")
	pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)

	t.Cleanup(func() {
		if t.Failed() {
			kp := e.Peer(agentKey.PublicKey()).current.Load()
			t.Logf("stats at failure: %+v, current keypair %+v", e.Stats(), kp != nil)
		}
	})
	msgs := floodInitiations(t, e.PublicKey(), 256)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addrPort("127.0.0.1", 0)))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer uc.Close()
			to := net.UDPAddrFromAddrPort(dst)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for range 50 {
					_, _ = uc.WriteToUDP(msgs[i%len(msgs)], to)
					i++
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 5; i++ {
		pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)
	}
	close(stop)
	wg.Wait()
	s := e.Stats()
	if s.CookieRepliesSent+s.DroppedRateLimited+s.DroppedUnauthorized+s.DroppedQueueFull < 500 {
		t.Fatalf("flood not counted: %+v", s)
	}
	t.Logf("after flood: %+v", s)
}
