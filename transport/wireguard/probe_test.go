package wireguard

import (
	"fmt"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

func testProbeKeys(t *testing.T) (agent PrivateKey, edge PrivateKey, key [32]byte) {
	agent, edge = mustKey(t), mustKey(t)
	k1, err := ProbeKey(agent, edge.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ProbeKey(edge, agent.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 {
		t.Fatal("the agent and the edge derive different probe keys")
	}
	return agent, edge, k1
}

// TestProbeCodec: a probe round-trips, never looks like a WireGuard
// message, and its MAC covers every header field but not the padding.
func TestProbeCodec(t *testing.T) {
	agent, _, key := testProbeKeys(t)
	m := probeMsg{kind: probeKindProbe, agent: agent.PublicKey(), nonce: 0x0102030405060708, size: 1400, rsize: 1300, rmtu: 1220, fmtu: 1340, flags: probeFlagAck}
	buf := make([]byte, 1400)
	putProbe(buf, &m, &key)
	if typ := msgType(buf); typ >= msgTypeInitiation && typ <= msgTypeTransport {
		t.Fatalf("a probe's type word %#x is a WireGuard type", typ)
	}
	got, ok := parseProbe(buf)
	if !ok || got != m {
		t.Fatalf("parseProbe = %+v, %v; want %+v", got, ok, m)
	}
	if !checkProbeMAC(buf, &key) {
		t.Fatal("the MAC of a fresh probe does not verify")
	}
	buf[1000] = 1 // padding is not covered
	if !checkProbeMAC(buf, &key) {
		t.Fatal("the MAC covers the padding")
	}
	for i := range probeMACOffset + macSize {
		b := append([]byte(nil), buf...)
		b[i] ^= 0x40
		if isProbe(b) && checkProbeMAC(b, &key) {
			t.Fatalf("a probe with byte %d flipped still verifies", i)
		}
	}
	var other [32]byte
	if checkProbeMAC(buf, &other) {
		t.Fatal("the MAC verifies under another key")
	}
	if _, ok := parseProbe(buf[:ProbeHeaderSize-1]); ok {
		t.Fatal("a short probe parses")
	}
}

// FuzzParseProbe: no input panics the parser or the MAC check.
func FuzzParseProbe(f *testing.F) {
	var key [32]byte
	buf := make([]byte, ProbeHeaderSize)
	putProbe(buf, &probeMsg{kind: probeKindAck, size: 80}, &key)
	f.Add(buf)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, ok := parseProbe(b); ok {
			checkProbeMAC(b, &key)
		}
	})
}

// fakeSend is a conn.Bind that records what the endpoint sends.
type probeRecBind struct {
	conn.Bind
	sent chan []byte
	to   chan string
}

func (b *probeRecBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	for _, m := range bufs {
		if isProbe(m) {
			b.sent <- append([]byte(nil), m...)
			b.to <- ep.DstToString()
		}
	}
	return nil
}

// TestProbeResponder: the edge answers a probe of a known session whose MAC
// verifies, to the session's endpoint and not the probe's source; a wrong
// key, an unknown key, a tampered header or an RPROBE larger than any MTU
// get nothing and are counted, and a flood is rate-limited.
func TestProbeResponder(t *testing.T) {
	agent, edgeKey, key := testProbeKeys(t)
	rec := &probeRecBind{Bind: conn.NewStdNetBind(), sent: make(chan []byte, 1024), to: make(chan string, 1024)}
	var reported []int
	e := newTestEndpoint(t, Config{PrivateKey: edgeKey, Bind: rec, Receiver: ReceiverFunc(func([]Packet) {}),
		OnPathMTU: func(s *Session, mtu int) { reported = append(reported, mtu) }})
	sess, err := e.AddPeer(PeerConfig{PublicKey: agent.PublicKey(), Endpoint: addrPort("192.0.2.10", 51820)})
	if err != nil {
		t.Fatal(err)
	}
	now := e.now() // one instant: the flood below gets exactly the burst
	probe := func(k *[32]byte, pub PublicKey, tamper bool) {
		m := probeMsg{kind: probeKindProbe, agent: pub, nonce: 7, size: 300, rsize: 200, rmtu: 1220, flags: probeFlagAck}
		buf := make([]byte, 300)
		putProbe(buf, &m, k)
		if tamper {
			buf[46]++ // ask for a larger answer
		}
		e.handleProbe(buf, now)
	}
	drain := func() (n int) {
		for {
			select {
			case <-rec.sent:
				if to := <-rec.to; to != "192.0.2.10:51820" {
					t.Fatalf("answer sent to %s, want the session's endpoint", to)
				}
				n++
			default:
				return n
			}
		}
	}
	var wrong [32]byte
	probe(&wrong, agent.PublicKey(), false)
	probe(&key, mustKey(t).PublicKey(), false)
	probe(&key, agent.PublicKey(), true)
	if n := drain(); n != 0 {
		t.Fatalf("%d answers to bad probes", n)
	}
	if got := e.Stats().DroppedProbe; got != 3 {
		t.Fatalf("DroppedProbe = %d, want 3", got)
	}
	probe(&key, agent.PublicKey(), false)
	if n := drain(); n != 2 {
		t.Fatalf("a good probe got %d answers, want an ACK and an RPROBE", n)
	}
	big := probeMsg{kind: probeKindProbe, agent: agent.PublicKey(), nonce: 8, rsize: maxRProbe + 1}
	buf := make([]byte, ProbeHeaderSize)
	putProbe(buf, &big, &key)
	e.handleProbe(buf, now)
	if n := drain(); n != 0 {
		t.Fatalf("a probe asking for an RPROBE of %d bytes got %d answers", maxRProbe+1, n)
	}
	if sess.ReverseMTU() != 1220 || fmt.Sprint(reported) != "[1220]" {
		t.Fatalf("ReverseMTU %d, reported %v; want 1220 once", sess.ReverseMTU(), reported)
	}
	for range 2 * probeBurst {
		probe(&key, agent.PublicKey(), false)
	}
	if n := drain(); n != 2*(probeBurst-1) {
		t.Fatalf("a flood of %d probes got %d answers, want %d (the rest of the burst, ACK and RPROBE each)", 2*probeBurst, n, 2*(probeBurst-1))
	}
	if got := e.Stats().DroppedProbe; got != 4+probeBurst+1 {
		t.Fatalf("DroppedProbe = %d after a flood, want %d", got, 4+probeBurst+1)
	}
}

// TestProbeAllow: the limiter refills at probeRate.
func TestProbeAllow(t *testing.T) {
	var s Session
	now := int64(1)
	n := 0
	for s.allowProbe(now) {
		n++
	}
	if n != probeBurst {
		t.Fatalf("burst %d, want %d", n, probeBurst)
	}
	now += int64(time.Second)
	n = 0
	for s.allowProbe(now) {
		n++
	}
	if n != probeRate {
		t.Fatalf("after a second %d, want %d", n, probeRate)
	}
}
