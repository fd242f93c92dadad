package wireguard

import (
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"

	"github.com/switchyard/switchyard/internal/packettest"
)

// capBind is a conn.Bind without sockets: it records what is sent, or
// copies it into an rxBatch so a test can feed it to another endpoint.
type capBind struct {
	mu    sync.Mutex
	msgs  [][]byte
	sink  *rxBatch
	sinkN int
	sent  uint64
	drop  bool // discard instead of recording
}

var _ conn.Bind = (*capBind)(nil)

func (b *capBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) { return nil, 1, nil }
func (b *capBind) Close() error                                    { return nil }
func (b *capBind) SetMark(uint32) error                            { return nil }
func (b *capBind) BatchSize() int                                  { return conn.IdealBatchSize }
func (b *capBind) ParseEndpoint(string) (conn.Endpoint, error) {
	return bindtest.ChannelEndpoint(1), nil
}

func (b *capBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, buf := range bufs {
		switch {
		case b.sink != nil:
			b.sinkN += copyInto(b.sink, b.sinkN, buf, ep)
		case b.drop:
		default:
			b.msgs = append(b.msgs, append([]byte(nil), buf...))
		}
		b.sent++
	}
	return nil
}

func copyInto(rx *rxBatch, i int, msg []byte, ep conn.Endpoint) int {
	if i >= len(rx.bufs) {
		return 0
	}
	rx.sizes[i] = copy(rx.bufs[i], msg)
	rx.eps[i] = ep
	return 1
}

func (b *capBind) take(t testing.TB) []byte {
	t.Helper()
	var m []byte
	waitFor(t, 5*time.Second, "a sent message", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.msgs) == 0 {
			return false
		}
		m, b.msgs = b.msgs[0], b.msgs[1:]
		return true
	})
	return m
}

// deliver feeds one message to e's receive path.
func deliver(e *Endpoint, msg []byte) {
	rx := e.newRxBatch(1)
	copyInto(rx, 0, msg, bindtest.ChannelEndpoint(1))
	e.processBatch(rx, 1)
}

// forwarder reflects every packet back to the session it came from, like
// a hub router, without allocating.
type forwarder struct {
	e    *Endpoint
	bufs [][]byte
}

func (f *forwarder) Receive(pkts []Packet) {
	for i := 0; i < len(pkts); {
		j, s := i, pkts[i].Session
		f.bufs = f.bufs[:0]
		for ; j < len(pkts) && pkts[j].Session == s; j++ {
			f.bufs = append(f.bufs, pkts[j].Buf)
		}
		_ = f.e.Send(s, f.bufs, Headroom)
		i = j
	}
	clear(f.bufs[:cap(f.bufs)])
}

// connectedCapPair builds two endpoints on capBinds and runs a handshake by
// hand; A is the initiator.
func connectedCapPair(t testing.TB, recvA, recvB Receiver) (a, b *Endpoint, ba, bb *capBind, sa, sb *Session) {
	a, b, ba, bb, sa, sb, _ = connectedCapPairMsgs(t, recvA, recvB)
	return a, b, ba, bb, sa, sb
}

// connectedCapPairMsgs is connectedCapPair that also returns the
// initiation, response and keepalive it exchanged.
func connectedCapPairMsgs(t testing.TB, recvA, recvB Receiver) (a, b *Endpoint, ba, bb *capBind, sa, sb *Session, msgs [3][]byte) {
	ba, bb = &capBind{}, &capBind{}
	a = newTestEndpoint(t, Config{Bind: ba, Receiver: recvA})
	b = newTestEndpoint(t, Config{Bind: bb, Receiver: recvB})
	var err error
	if sa, err = a.AddPeer(PeerConfig{PublicKey: b.PublicKey(), Endpoint: addrPort("127.0.0.1", 1)}); err != nil {
		t.Fatal(err)
	}
	if sb, err = b.AddPeer(PeerConfig{PublicKey: a.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	a.sendInitiation(sa, a.now(), false)
	msgs[0] = ba.take(t)
	deliver(b, msgs[0]) // initiation
	msgs[1] = bb.take(t)
	deliver(a, msgs[1]) // response
	msgs[2] = ba.take(t)
	deliver(b, msgs[2]) // keepalive confirms
	if !sa.Established() || !sb.Established() {
		t.Fatal("handshake over capBind failed")
	}
	return a, b, ba, bb, sa, sb, msgs
}

// ipv4Packet returns an IPv4 UDP packet of n bytes, at least 28 (RFC 5737 addresses).
func ipv4Packet(n int) []byte {
	return packettest.UDP(packettest.IP{Src: edgeIP, Dst: agentIP}, 0, 0, make([]byte, n-28))
}

// hubPipeline is the hub's in-process path without sockets: a sender
// encrypts a batch of 1420-byte packets onto a capBind, and the hub
// decrypts them and forwards each back to its sender (decrypt + encrypt).
type hubPipeline struct {
	a, hub *Endpoint
	ba     *capBind
	sa     *Session
	rx     *rxBatch
	pkt    []byte
	bufs   [][]byte
}

func newHubPipeline(tb testing.TB, n int) *hubPipeline {
	fwd := &forwarder{bufs: make([][]byte, 0, 128)}
	a, hub, ba, bb, sa, _ := connectedCapPair(tb, ReceiverFunc(func([]Packet) {}), fwd)
	fwd.e = hub
	h := &hubPipeline{a: a, hub: hub, ba: ba, sa: sa, rx: hub.newRxBatch(128), pkt: ipv4Packet(1420)}
	ba.sink = h.rx
	bb.drop = true
	h.bufs = make([][]byte, n)
	for i := range h.bufs {
		h.bufs[i] = make([]byte, Headroom+len(h.pkt), MaxMessageSize)
	}
	return h
}

// send refills the batch and encrypts it into the hub's receive batch.
func (h *hubPipeline) send(tb testing.TB) {
	for i := range h.bufs {
		copy(h.bufs[i][Headroom:], h.pkt)
	}
	h.ba.sinkN = 0
	if err := h.a.Send(h.sa, h.bufs, Headroom); err != nil {
		tb.Fatal(err)
	}
}

// process has the hub decrypt and forward what send produced.
func (h *hubPipeline) process() { h.hub.processBatch(h.rx, h.ba.sinkN) }
