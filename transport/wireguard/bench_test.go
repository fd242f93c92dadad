package wireguard

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// BenchmarkHandshake measures complete handshakes (initiation, response,
// key derivation on both sides) on one core, for this package and for
// wireguard-go's Noise code in the same run, and reports the ratio.
func BenchmarkHandshake(b *testing.B) {
	// This package: two endpoints, the flood checks skipped.
	ea := newTestEndpoint(b, Config{Bind: &capBind{drop: true}, Receiver: ReceiverFunc(func([]Packet) {})})
	eb := newTestEndpoint(b, Config{Bind: &capBind{drop: true}, Receiver: ReceiverFunc(func([]Packet) {})})
	sa, _ := ea.AddPeer(PeerConfig{PublicKey: eb.PublicKey()})
	if _, err := eb.AddPeer(PeerConfig{PublicKey: ea.PublicKey()}); err != nil {
		b.Fatal(err)
	}
	ours := func() {
		sa.mu.Lock()
		init, err := ea.createInitiationLocked(sa, 0)
		sa.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		m, _ := parseInitiation(init[:])
		c, err := eb.consumeInitiation(&m)
		if err != nil {
			b.Fatal(err)
		}
		c.sess.mu.Lock()
		resp, kp, err := eb.createResponseLocked(&c, 0)
		if err == nil {
			c.sess.installKeypairLocked(kp)
		}
		c.sess.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		r, _ := parseResponse(resp[:])
		sa.mu.Lock()
		kp, err = ea.consumeResponseLocked(sa, &r, 0)
		if err == nil {
			sa.installKeypairLocked(kp)
		}
		sa.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}

	// wireguard-go: one initiator and enough responders that none sees
	// two initiations within its 20ms flood limit.
	const responders = 256
	init := newBenchDevice(b)
	initKey := mustKey(b)
	if err := init.IpcSet("private_key=" + hexKey(initKey) + "\n"); err != nil {
		b.Fatal(err)
	}
	peers := make([]*device.Peer, responders)
	resps := make([]*device.Device, responders)
	for i := range resps {
		k := mustKey(b)
		resps[i] = newBenchDevice(b)
		if err := resps[i].IpcSet("private_key=" + hexKey(k) + "\npublic_key=" + hexKey(initKey.PublicKey()) + "\n"); err != nil {
			b.Fatal(err)
		}
		pub := k.PublicKey()
		if err := init.IpcSet("public_key=" + hexKey(pub) + "\n"); err != nil {
			b.Fatal(err)
		}
		peers[i] = init.LookupPeer(device.NoisePublicKey(pub))
	}
	wgIter := 0
	theirs := func() {
		i := wgIter % responders
		wgIter++
		msg, err := init.CreateMessageInitiation(peers[i])
		if err != nil {
			b.Fatal(err)
		}
		rp := resps[i].ConsumeMessageInitiation(msg)
		if rp == nil {
			b.Fatal("wireguard-go refused initiation (flood limit?)")
		}
		resp, err := resps[i].CreateMessageResponse(rp)
		if err != nil {
			b.Fatal(err)
		}
		if err := rp.BeginSymmetricSession(); err != nil {
			b.Fatal(err)
		}
		if init.ConsumeMessageResponse(resp) == nil {
			b.Fatal("wireguard-go refused response")
		}
		if err := peers[i].BeginSymmetricSession(); err != nil {
			b.Fatal(err)
		}
	}

	ours()
	theirs()
	var dOurs, dTheirs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		ours()
		t1 := time.Now()
		theirs()
		dOurs += t1.Sub(t0)
		dTheirs += time.Since(t1)
	}
	b.StopTimer()
	hsOurs := float64(b.N) / dOurs.Seconds()
	hsTheirs := float64(b.N) / dTheirs.Seconds()
	b.ReportMetric(hsOurs, "switchyard-hs/s/core")
	b.ReportMetric(hsTheirs, "wggo-hs/s/core")
	b.ReportMetric(hsOurs/hsTheirs, "ratio")
}

func newBenchDevice(b *testing.B) *device.Device {
	d := device.NewDevice(newLoopTUN(), &capBind{drop: true}, device.NewLogger(device.LogLevelSilent, ""))
	b.Cleanup(d.Close)
	return d
}

// BenchmarkProcessBatch is the hub's in-process path without sockets:
// decrypt a batch of 64 1420-byte packets and encrypt them again.
func BenchmarkProcessBatch(b *testing.B) {
	h := newHubPipeline(b, 64)
	h.send(b)
	h.process()
	b.ReportAllocs()
	b.SetBytes(int64(len(h.pkt) * len(h.bufs)))
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		h.send(b)
		c0 := processCPU()
		h.process()
		cpu += processCPU() - c0
	}
	b.ReportMetric(cpu.Seconds()/(float64(b.N)*float64(len(h.pkt)*len(h.bufs))/1e9), "cpu-s/GB")
}

// loopTUN is a tun.Device that hands every packet written to it back to
// the reader, so a wireguard-go device forwards between its peers.
type loopTUN struct {
	ch     chan *[]byte
	pool   sync.Pool
	events chan tun.Event
	closed chan struct{}
	once   sync.Once
}

var _ tun.Device = (*loopTUN)(nil)

func newLoopTUN() *loopTUN {
	t := &loopTUN{ch: make(chan *[]byte, 4096), events: make(chan tun.Event, 1), closed: make(chan struct{})}
	t.pool.New = func() any { b := make([]byte, 2048); return &b }
	t.events <- tun.EventUp
	return t
}

func (t *loopTUN) File() *os.File           { return nil }
func (t *loopTUN) MTU() (int, error)        { return 1420, nil }
func (t *loopTUN) Name() (string, error)    { return "loop", nil }
func (t *loopTUN) Events() <-chan tun.Event { return t.events }
func (t *loopTUN) BatchSize() int           { return conn.IdealBatchSize }

func (t *loopTUN) Close() error {
	t.once.Do(func() { close(t.closed); close(t.events) })
	return nil
}

func (t *loopTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p *[]byte
	select {
	case <-t.closed:
		return 0, os.ErrClosed
	case p = <-t.ch:
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], *p)
		t.pool.Put(p)
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case p = <-t.ch:
		default:
			return n, nil
		}
	}
}

func (t *loopTUN) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		p := t.pool.Get().(*[]byte)
		*p = append((*p)[:0], b[offset:]...)
		select {
		case t.ch <- p:
		default:
			t.pool.Put(p)
		}
	}
	return len(bufs), nil
}

// processCPU returns the process's user plus system CPU time.
func processCPU() time.Duration {
	var ru syscallRusage
	getrusage(&ru)
	return ru.total()
}

// childCPU returns a child process's CPU time from /proc (Linux only).
func childCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100), nil // USER_HZ
}

// Forwarding benchmark: a hub (this package or wireguard-go) runs in a
// child process so its CPU time can be measured alone; two endpoints of
// this package in the test process are the peers A and B, A sending
// 1420-byte packets to B through the hub over UDP on 127.0.0.1.
const hubEnv = "SWITCHYARD_WG_BENCH_HUB"

var (
	hubAddrA = netip.MustParseAddr("192.0.2.1")
	hubAddrB = netip.MustParseAddr("192.0.2.2")
)

func TestMain(m *testing.M) {
	if kind := os.Getenv(hubEnv); kind != "" {
		os.Exit(hubMain(kind))
	}
	os.Exit(m.Run())
}

// hubMain runs a hub until stdin closes. Keys come as hex in the
// environment: HUB_KEY, PEER_A, PEER_B.
func hubMain(kind string) int {
	key, _ := hex.DecodeString(os.Getenv("HUB_KEY"))
	pa, _ := hex.DecodeString(os.Getenv("PEER_A"))
	pb, _ := hex.DecodeString(os.Getenv("PEER_B"))
	var port uint16
	switch kind {
	case "switchyard":
		h := &hubRouter{}
		e, err := New(Config{PrivateKey: PrivateKey(key), Bind: conn.NewStdNetBind(), Receiver: h})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer e.Close()
		h.e = e
		h.a, _ = e.AddPeer(PeerConfig{PublicKey: PublicKey(pa)})
		h.b, _ = e.AddPeer(PeerConfig{PublicKey: PublicKey(pb)})
		h.bufs = make([][]byte, 0, conn.IdealBatchSize)
		port = e.Port()
	case "wireguard-go":
		d := device.NewDevice(newLoopTUN(), conn.NewStdNetBind(), device.NewLogger(device.LogLevelSilent, ""))
		defer d.Close()
		err := d.IpcSet("private_key=" + hex.EncodeToString(key) + "\nlisten_port=0\n" +
			"public_key=" + hex.EncodeToString(pa) + "\nallowed_ip=" + hubAddrA.String() + "/32\n" +
			"public_key=" + hex.EncodeToString(pb) + "\nallowed_ip=" + hubAddrB.String() + "/32\n")
		if err == nil {
			err = d.Up()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		s, _ := d.IpcGet()
		for _, line := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(line, "listen_port="); ok {
				p, _ := strconv.Atoi(v)
				port = uint16(p)
			}
		}
	default:
		return 2
	}
	fmt.Printf("PORT %d\n", port)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// hubRouter forwards by destination address between two sessions.
type hubRouter struct {
	e    *Endpoint
	a, b *Session
	bufs [][]byte
}

func (h *hubRouter) Receive(pkts []Packet) {
	var dst *Session
	flush := func() {
		if len(h.bufs) > 0 {
			_ = h.e.Send(dst, h.bufs, Headroom)
			clear(h.bufs)
			h.bufs = h.bufs[:0]
		}
	}
	for _, p := range pkts {
		d := p.Data()
		to := h.b
		if netip.AddrFrom4([4]byte(d[16:20])) == hubAddrA {
			to = h.a
		}
		if to != dst {
			flush()
			dst = to
		}
		h.bufs = append(h.bufs, p.Buf)
	}
	flush()
}

// BenchmarkForward reports the hub's CPU seconds per GB of 1420-byte
// packets forwarded, for this package and for wireguard-go.
func BenchmarkForward(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads child CPU time from /proc")
	}
	b.SetBytes(1420)
	ours := runHubBench(b, "switchyard")
	theirs := runHubBench(b, "wireguard-go")
	b.ReportMetric(ours, "switchyard-cpu-s/GB")
	b.ReportMetric(theirs, "wggo-cpu-s/GB")
	b.ReportMetric(theirs/ours, "speedup")
}

func runHubBench(b *testing.B, kind string) float64 {
	hubKey, ka, kb := mustKey(b), mustKey(b), mustKey(b)
	pa, pb := ka.PublicKey(), kb.PublicKey()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), hubEnv+"="+kind, "HUB_KEY="+hexKey(hubKey), "PEER_A="+hexKey(pa), "PEER_B="+hexKey(pb))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		b.Fatalf("hub %s: %v", kind, err)
	}
	port, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "PORT ")))
	hubAP := addrPort("127.0.0.1", uint16(port))

	var rxBytes, rxPkts atomic.Uint64
	recvB := ReceiverFunc(func(p []Packet) {
		for _, pk := range p {
			rxBytes.Add(uint64(len(pk.Data())))
		}
		rxPkts.Add(uint64(len(p)))
	})
	a := newTestEndpoint(b, Config{PrivateKey: ka, Bind: conn.NewStdNetBind(), Receiver: ReceiverFunc(func([]Packet) {})})
	eb := newTestEndpoint(b, Config{PrivateKey: kb, Bind: conn.NewStdNetBind(), Receiver: recvB})
	defer a.Close()
	defer eb.Close()
	sa, _ := a.AddPeer(PeerConfig{PublicKey: hubKey.PublicKey(), Endpoint: hubAP})
	sb, _ := eb.AddPeer(PeerConfig{PublicKey: hubKey.PublicKey(), Endpoint: hubAP})
	eb.Handshake(sb)
	deadline := time.Now().Add(10 * time.Second)
	for !sb.Established() || !sa.Established() {
		if time.Now().After(deadline) {
			b.Fatalf("hub %s: no sessions", kind)
		}
		a.Handshake(sa)
		time.Sleep(10 * time.Millisecond)
	}
	pkt := ipv4Packet(1420)
	copy(pkt[12:16], hubAddrA.AsSlice())
	copy(pkt[16:20], hubAddrB.AsSlice())
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+len(pkt), MaxMessageSize)
	}
	send := func() {
		for i := range bufs {
			copy(bufs[i][Headroom:], pkt)
		}
		_ = a.Send(sa, bufs, Headroom)
	}
	// Warm up until packets arrive at B, then measure b.N packets.
	for rxPkts.Load() == 0 && time.Now().Before(deadline) {
		send()
		time.Sleep(time.Millisecond)
	}
	const window = 2048
	time.Sleep(20 * time.Millisecond)
	c0, _ := childCPU(cmd.Process.Pid)
	base := rxPkts.Load()
	baseBytes := rxBytes.Load()
	sent := uint64(0)
	lastProgress, lastRx := time.Now(), base
	for rxPkts.Load()-base < uint64(b.N) {
		got := rxPkts.Load() - base
		if sent-min(got, sent) < window {
			send()
			sent += uint64(len(bufs))
			continue
		}
		if got != lastRx {
			lastProgress, lastRx = time.Now(), got
		} else if time.Since(lastProgress) > 50*time.Millisecond {

			sent = got // the rest was lost
			lastProgress = time.Now()
		}
		time.Sleep(20 * time.Microsecond)
	}
	c1, _ := childCPU(cmd.Process.Pid)
	gb := float64(rxBytes.Load()-baseBytes) / 1e9
	return (c1 - c0).Seconds() / gb
}
