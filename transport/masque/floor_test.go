package masque

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/switchyard/switchyard/internal/testpki"
)

// floorALPN is the protocol the floor's bare QUIC connection negotiates.
const floorALPN = "switchyard-datagram-floor"

// floorTCPPayload is the TCP payload a full-size datagram carries in make
// bench's lab (IPv4 and TCP headers with timestamps taken from Session.MTU),
// so that the floor's CPU per GB is in the lab's unit.
const floorTCPPayload = MTU - 20 - 32

// floorWindow bounds the datagrams in flight, as the inner TCP's window
// would, below quic-go's receive queue of 128 datagrams.
const floorWindow = 96

// BenchmarkDatagramFloor is quic-go's floor under the edge's MASQUE path:
// full-size datagrams (Session.MTU's inner packet and its 2-byte prefix)
// from one bare QUIC connection to another on loopback, each on a transport
// made as the edge and the agents make theirs (connIDLen, UDP_GRO,
// quicConfig), with no HTTP/3, CONNECT-IP or routing. The process pays one
// SendDatagram and one ReceiveDatagram per datagram, with their ACKs,
// system calls and the kernel's loopback delivery: the least the edge can
// pay through quic-go's API for each packet it forwards from one MASQUE
// session to another. It reports cpu-s/GB and context switches per GB of
// the TCP payload the datagrams would carry (the lab's unit, as make bench
// compares it with the edge), Gbps of that payload, and the share lost.
func BenchmarkDatagramFloor(b *testing.B) {
	snd, rcv := floorConns(b)
	payload := make([]byte, MTU+datagramOverhead)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// quic-go takes a full-size datagram once path MTU discovery has
	// confirmed fullPathPacketSize.
	for {
		err := snd.SendDatagram(payload)
		if err == nil {
			break
		}
		if _, ok := errors.AsType[*quic.DatagramTooLargeError](err); !ok || ctx.Err() != nil {
			b.Fatalf("send a %d-byte datagram: %v (%v)", len(payload), err, ctx.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Each datagram in flight holds a credit; the receiver returns one per
	// datagram, and a window that stalls for 50 ms counts as lost.
	credits := make(chan struct{}, floorWindow)
	var got atomic.Uint64
	go func() {
		for {
			if _, err := rcv.ReceiveDatagram(context.Background()); err != nil {
				return
			}
			got.Add(1)
			select {
			case <-credits:
			default:
			}
		}
	}()
	for got.Load() == 0 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	b.SetBytes(floorTCPPayload)
	b.ResetTimer()
	base := got.Load()
	u0, start := processUsage(), time.Now()
	var sent, lost int
	stall := time.NewTimer(time.Hour)
	for sent-lost < b.N {
		select {
		case credits <- struct{}{}:
		default:
			stall.Reset(50 * time.Millisecond)
			select {
			case credits <- struct{}{}:
			case <-stall.C:
				for len(credits) > 0 { // the window was lost
					<-credits
					lost++
				}
				continue
			}
		}
		if err := snd.SendDatagram(payload); err != nil {
			b.Fatalf("send datagram %d: %v", sent, err)
		}
		sent++
	}
	for deadline := time.Now().Add(time.Second); int(got.Load()-base) < sent-lost && time.Now().Before(deadline); {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed, u := time.Since(start), processUsage().sub(u0)
	b.StopTimer()
	gb := float64(got.Load()-base) * floorTCPPayload / 1e9
	b.ReportMetric(gb*8/elapsed.Seconds(), "Gbps")
	b.ReportMetric(u.cpu.Seconds()/gb, "cpu-s/GB")
	b.ReportMetric(float64(u.switches)/gb, "switches/GB")
	b.ReportMetric(100*float64(lost)/float64(max(sent, 1)), "loss-%")
}

// floorConns returns the two ends of a bare QUIC connection on loopback,
// each on a transport of its own made as the edge and agents make theirs.
func floorConns(tb testing.TB) (client, server *quic.Conn) {
	tb.Helper()
	cert, clientTLS := testpki.Server(tb)
	transport := func() *quic.Transport {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatal(err)
		}
		tr := newTransport(udp)
		tb.Cleanup(func() { tr.Close() })
		return tr
	}
	srvTr, cliTr := transport(), transport()
	ln, err := srvTr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{floorALPN}, MinVersion: tls.VersionTLS13}, quicConfig())
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clientTLS.NextProtos = []string{floorALPN}
	client, err = cliTr.Dial(ctx, srvTr.Conn.LocalAddr(), clientTLS, quicConfig())
	if err != nil {
		tb.Fatal(err)
	}
	server, err = ln.Accept(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		client.CloseWithError(0, "")
		server.CloseWithError(0, "")
		ln.Close()
	})
	return client, server
}
