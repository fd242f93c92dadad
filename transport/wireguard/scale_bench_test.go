package wireguard

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/switchyard/switchyard/router"
)

// BenchmarkIdleSessions brings up 10k and 100k device sessions on one edge
// endpoint the way the edge does — a router.Peer and an overlay route per
// device, AddPeer, then a real handshake (initiation, response, and the
// keepalive that confirms the key) through the endpoint's receive path and
// handshake workers — and reports the heap each idle session holds and the
// time the edge spends on it. The simulated devices' side is computed
// beforehand and between the phases, so neither its CPU nor its memory is
// counted. Only the socket is missing: the bind hands messages over in
// memory. BENCH_QUICK=1 skips 100k.
func BenchmarkIdleSessions(b *testing.B) {
	for _, n := range []struct {
		name string
		size int
	}{{"10k", 10_000}, {"100k", 100_000}} {
		b.Run(n.name, func(b *testing.B) {
			if n.size > 10_000 && os.Getenv("BENCH_QUICK") == "1" {
				b.Skip("BENCH_QUICK=1")
			}
			for b.Loop() {
				runIdleSessions(b, n.size)
			}
		})
	}
}

func heapNow() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// scaleWindow bounds the initiations in flight: the endpoint's handshake
// queue must stay under an eighth of its size, or it goes "under load" and
// answers with cookies (a burst of 100k devices would see that; a steady
// stream does not).
const scaleWindow = 64

func runIdleSessions(b *testing.B, n int) {
	// The devices' keys, made before anything is measured.
	devKeys := make([]PrivateKey, n)
	devPubs := make([]PublicKey, n)
	for i := range devKeys {
		devKeys[i] = mustKey(b)
		devPubs[i] = devKeys[i].PublicKey()
	}

	h0 := heapNow()
	bind := newScaleBind()
	r := router.New(router.Config{})
	// Keys live an hour instead of RejectAfterTime's 180 s: on a loaded
	// 2-core machine 100k handshakes and the devices' side of them can take
	// longer than that, and the first keys would expire before their
	// confirmation arrives. The timers' idle cost does not depend on it.
	edge, err := New(Config{PrivateKey: mustKey(b), Bind: bind, Receiver: ReceiverFunc(func([]Packet) {}),
		Timers: Timers{RejectAfterTime: time.Hour}})
	if err != nil {
		b.Fatal(err)
	}
	defer edge.Close()
	h1 := heapNow()

	// Phase 1, timed: the control plane authorizes every device.
	t0 := time.Now()
	tb := router.NewTableBuilder()
	sessions := make([]*Session, n)
	for i := range n {
		p := &router.Peer{Name: fmt.Sprintf("device-%d", i), Kind: router.Client, Overlay: overlayAddr(i)}
		s, err := edge.AddPeer(PeerConfig{PublicKey: devPubs[i], Value: p})
		if err != nil {
			b.Fatal(err)
		}
		p.Out = s
		tb.AddClient(p)
		sessions[i] = s
	}
	r.SetTable(tb.Build())
	addTime := time.Since(t0)

	// The devices' initiations, untimed.
	ini := make([]*Session, n)
	iniIndex := newIndexTable(n)
	edgePub := edge.PublicKey()
	msgs := make([][]byte, n)
	for i := range n {
		ie := &Endpoint{priv: devKeys[i], key: ecdhKey(&devKeys[i]), pub: devPubs[i], index: iniIndex, t: Timers{}.withDefaults(), epoch: edge.epoch}
		ss, err := dh(&ie.priv, (*[32]byte)(&edgePub))
		if err != nil {
			b.Fatal(err)
		}
		s := &Session{e: ie, key: edgePub, staticStatic: ss}
		s.mu.Lock()
		m, err := ie.createInitiationLocked(s, ie.now())
		s.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		ini[i], msgs[i] = s, m[:]
	}

	// Phase 2, timed: the edge answers every initiation.
	t0 = time.Now()
	resps := make([][]byte, n)
	sent, got := 0, 0
	for got < n {
		for sent < n && sent-got < scaleWindow {
			k := min(n-sent, scaleWindow-(sent-got), conn.IdealBatchSize)
			bind.deliver(msgs[sent:sent+k], sent)
			sent += k
		}
		select {
		case o := <-bind.out:
			resps[o.dev] = o.msg
			got++
		case <-time.After(10 * time.Second):
			b.Fatalf("%d of %d handshakes answered; endpoint stats %+v", got, n, edge.Stats())
		}
	}
	hsTime := time.Since(t0)

	// The devices complete their side and make the confirming keepalives, untimed.
	for i := range n {
		m, ok := parseResponse(resps[i])
		if !ok {
			b.Fatalf("device %d: malformed response", i)
		}
		s := ini[i]
		s.mu.Lock()
		kp, err := s.e.consumeResponseLocked(s, &m, s.e.now())
		s.mu.Unlock()
		if err != nil {
			b.Fatalf("device %d: %v", i, err)
		}
		msg := make([]byte, keepaliveSize)
		putTransportHeader(msg, kp.remoteIndex, 0)
		var nonce [12]byte
		kp.send.Seal(msg[transportHeaderSize:transportHeaderSize], nonce[:], nil, nil)
		msgs[i] = msg
	}

	// Phase 3, timed: the keepalives confirm the keys.
	t0 = time.Now()
	for i := 0; i < n; i += conn.IdealBatchSize {
		bind.deliver(msgs[i:min(n, i+conn.IdealBatchSize)], i)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < n; {
		if sessions[i].current.Load() != nil {
			i++
			continue
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sessions confirmed; endpoint stats %+v", i, n, edge.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	confirmTime := time.Since(t0)

	// Drop everything of the devices' side, then weigh what the edge keeps.
	ini, msgs, resps, iniIndex = nil, nil, nil, nil
	h2 := heapNow()
	runtime.KeepAlive(devKeys) // allocated before h1: keep it out of the difference

	// Idle: what the timers cost with every session up and silent.
	c0, w0 := processCPU(), time.Now()
	time.Sleep(time.Second)
	idleCPU := (processCPU() - c0).Seconds() / time.Since(w0).Seconds()

	if got := edge.Stats().HandshakesCompleted; got != uint64(n) {
		b.Fatalf("%d handshakes completed, want %d", got, n)
	}
	runtime.KeepAlive(sessions)
	runtime.KeepAlive(r)
	up := hsTime + confirmTime
	b.ReportMetric(float64(h2-h1)/float64(n), "B/session")
	b.ReportMetric(float64(h1-h0), "B/endpoint")
	b.ReportMetric(addTime.Seconds(), "s/add-peers")
	b.ReportMetric(up.Seconds(), "s/bring-up")
	b.ReportMetric(float64(n)/hsTime.Seconds(), "handshakes/s")
	b.ReportMetric(100*idleCPU, "idle-cpu-%")
}

// overlayAddr is device i's overlay address in 100.96.0.0/12.
func overlayAddr(i int) netip.Addr {
	v := uint32(100)<<24 | uint32(96)<<16 | uint32(i+1)
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// scaleBind is a conn.Bind without a socket: deliver hands messages to the
// endpoint's receive function, and what the endpoint sends comes out on out,
// tagged with the device it went to. Device i's UDP address is unique, so the
// endpoint stores one endpoint per session as it would on the network.
type scaleBind struct {
	in     chan []scaleMsg
	out    chan scaleOut
	closed chan struct{}
}

type scaleMsg struct {
	msg []byte
	ep  *conn.StdNetEndpoint
}

type scaleOut struct {
	dev int
	msg []byte
}

var _ conn.Bind = (*scaleBind)(nil)

func newScaleBind() *scaleBind {
	return &scaleBind{in: make(chan []scaleMsg, 16), out: make(chan scaleOut, 4*scaleWindow), closed: make(chan struct{})}
}

// devEndpoint is device i's address: 10.0.0.0/8 plus a port, i < 2^24.
func devEndpoint(i int) *conn.StdNetEndpoint {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], 10<<24|uint32(i))
	return &conn.StdNetEndpoint{AddrPort: netip.AddrPortFrom(netip.AddrFrom4(a), 51820)}
}

func devOf(ep conn.Endpoint) int {
	a := ep.(*conn.StdNetEndpoint).Addr().As4()
	return int(binary.BigEndian.Uint32(a[:]) &^ (10 << 24))
}

// deliver queues msgs, from devices first, first+1, ..., as one receive batch.
func (b *scaleBind) deliver(msgs [][]byte, first int) {
	batch := make([]scaleMsg, len(msgs))
	for i, m := range msgs {
		batch[i] = scaleMsg{msg: m, ep: devEndpoint(first + i)}
	}
	b.in <- batch
}

func (b *scaleBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	recv := func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		select {
		case <-b.closed:
			return 0, net.ErrClosed
		case batch := <-b.in:
			for i, m := range batch {
				sizes[i] = copy(bufs[i], m.msg)
				eps[i] = m.ep
			}
			return len(batch), nil
		}
	}
	return []conn.ReceiveFunc{recv}, 51820, nil
}

func (b *scaleBind) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

func (b *scaleBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	for _, buf := range bufs {
		select {
		case b.out <- scaleOut{dev: devOf(ep), msg: append([]byte(nil), buf...)}:
		case <-b.closed:
			return net.ErrClosed
		}
	}
	return nil
}

func (b *scaleBind) SetMark(uint32) error { return nil }
func (b *scaleBind) BatchSize() int       { return conn.IdealBatchSize }
func (b *scaleBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return &conn.StdNetEndpoint{AddrPort: ap}, nil
}
