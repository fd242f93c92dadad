package masque

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hub is a Handler that forwards packets between its sessions by
// destination address, as the edge's router does, without the router.
type hub struct {
	mu       sync.Mutex
	next     byte
	sessions map[netip.Addr]*Session
	opened   chan struct{}
}

func (h *hub) Authenticate(*http.Request) (Grant, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	a := netip.AddrFrom4([4]byte{198, 51, 100, h.next})
	return Grant{Addresses: []netip.Prefix{netip.PrefixFrom(a, 32)}, Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, Value: a}, nil
}

func (h *hub) Open(s *Session, g Grant, _ []netip.Prefix) (Receiver, error) {
	h.mu.Lock()
	h.sessions[g.Value.(netip.Addr)] = s
	h.mu.Unlock()
	h.opened <- struct{}{}
	return h, nil
}

func (h *hub) Closed(*Session, Grant) {}

func (h *hub) Receive(_ *Session, bufs [][]byte) {
	for _, b := range bufs {
		pkt := b[Headroom:]
		h.mu.Lock()
		to := h.sessions[netip.AddrFrom4([4]byte(pkt[16:20]))]
		h.mu.Unlock()
		if to != nil {
			to.WritePacket(pkt)
		}
	}
}

// counter is an agent's Receiver that counts packets and bytes.
type counter struct{ pkts, bytes atomic.Uint64 }

func (c *counter) Receive(_ *Session, bufs [][]byte) {
	for _, b := range bufs {
		c.bytes.Add(uint64(len(b) - Headroom))
	}
	c.pkts.Add(uint64(len(bufs)))
}

// BenchmarkForward sends MTU-sized packets from one agent through a MASQUE
// hub to another, all on loopback in this process, with at most a window of
// packets in flight. It reports throughput (MB/s from SetBytes, and Gbps),
// the process's CPU seconds per GB (hub and both agents together) and the
// share of packets lost. transport/wireguard's BenchmarkForward measures the
// WireGuard hub alone, in a child process.
func BenchmarkForward(b *testing.B) {
	h := &hub{sessions: map[netip.Addr]*Session{}, opened: make(chan struct{}, 2)}
	srv, tlsConf := startServerWith(b, h)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func() *ClientSession {
		cs, err := Dial(ctx, ClientConfig{Addr: addr, TLS: tlsConf, Header: bearer("any"), ExpectAddress: true})
		if err != nil {
			b.Fatal(err)
		}
		cs.Advertise(cs.Addresses)
		return cs
	}
	a, dst := dial(), dial()
	defer a.Close()
	defer dst.Close()
	<-h.opened
	<-h.opened
	var rx counter
	go a.Serve(&counter{})
	go dst.Serve(&rx)

	pkt := ipv4(a.Addresses[0].Addr(), dst.Addresses[0].Addr(), 64, MTU)
	buf := make([]byte, len(pkt))
	send := func() {
		copy(buf, pkt) // WritePacket changes the TTL and checksum in place
		a.WritePacket(buf)
	}
	// Warm up until packets arrive.
	deadline := time.Now().Add(10 * time.Second)
	for rx.pkts.Load() == 0 && time.Now().Before(deadline) {
		send()
		time.Sleep(time.Millisecond)
	}
	if rx.pkts.Load() == 0 {
		b.Fatal("no packet crossed the hub")
	}
	time.Sleep(20 * time.Millisecond)
	const window = 512
	b.SetBytes(int64(MTU))
	b.ResetTimer()
	h.mu.Lock()
	in := h.sessions[a.Addresses[0].Addr()] // the hub's side of a's session
	h.mu.Unlock()
	a0, in0 := a.Stats(), in.Stats()
	u0, start := processUsage(), time.Now()
	base, baseBytes := rx.pkts.Load(), rx.bytes.Load()
	var sent, lost uint64
	lastProgress, lastRx := time.Now(), uint64(0)
	for rx.pkts.Load()-base < uint64(b.N) {
		got := rx.pkts.Load() - base
		if sent-min(got+lost, sent) < window {
			send()
			sent++
			continue
		}
		if got != lastRx {
			lastProgress, lastRx = time.Now(), got
		} else if time.Since(lastProgress) > 50*time.Millisecond {
			lost = sent - got // the rest of the window was lost
			lastProgress = time.Now()
		}
		time.Sleep(20 * time.Microsecond)
	}
	elapsed, cpu := time.Since(start), processUsage().sub(u0).cpu
	b.StopTimer()
	a1, in1 := a.Stats(), in.Stats()
	gb := float64(rx.bytes.Load()-baseBytes) / 1e9
	b.ReportMetric(gb*8/elapsed.Seconds(), "Gbps")
	b.ReportMetric(cpu.Seconds()/gb, "cpu-s/GB")
	b.ReportMetric(100*float64(lost)/float64(max(sent, 1)), "loss-%")
	// QUIC's cost beyond the datagrams: the packets the hub sends back to
	// a (ACKs; quic-go queues one after every second packet but sends it
	// once it has handled what it read) per datagram a sent, and the share
	// of the QUIC packets the hub received from a whose datagram never
	// reached its session (dropped in quic-go's or HTTP/3's queue).
	dgrams := float64(max(a1.TxPackets-a0.TxPackets, 1))
	b.ReportMetric(float64(a1.QUIC.PacketsReceived-a0.QUIC.PacketsReceived)/dgrams, "acks/datagram")
	qin := float64(max(in1.QUIC.PacketsReceived-in0.QUIC.PacketsReceived, 1))
	b.ReportMetric(100*max(0, 1-float64(in1.RxPackets-in0.RxPackets)/qin), "queue-drop-%")
}
