package masque

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard/switchyard/internal/testpki"
)

// countingConn counts the system calls quic-go makes to send, the packets
// they carry (a UDP_SEGMENT control message makes one call many packets),
// and the packets sent in calls of more than one.
type countingConn struct {
	*net.UDPConn
	writes, packets, batched atomic.Int64
}

func (c *countingConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	n := int64(segments(len(b), oob))
	c.writes.Add(1)
	c.packets.Add(n)
	if n > 1 {
		c.batched.Add(n)
	}
	return c.UDPConn.WriteMsgUDP(b, oob, addr)
}

// segments is how many UDP datagrams a send of n bytes with oob makes.
func segments(n int, oob []byte) int {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_SEGMENT && len(data) >= 2 {
			size := int(binary.NativeEndian.Uint16(data))
			return (n + size - 1) / size
		}
		oob = rest
	}
	return 1
}

// TestFullSizeDatagramsBatch: a burst of full-size packets (Session.MTU)
// from the edge leaves partly in GSO batches, several QUIC packets per
// system call (how many depends on how fast quic-go's sending loop drains
// its datagram queue: from a tenth to all of them here). It fails with quic-go's default 4-byte
// connection ids (connIDLen), which leave every full-size packet short of
// the packet size and send each with a system call of its own.
func TestFullSizeDatagramsBatch(t *testing.T) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{UDPConn: udp}
	served := make(chan *Session, 1)
	h := &testHandler{grant: Grant{Routes: []netip.Prefix{site}}, opened: make(chan []netip.Prefix, 1), closed: make(chan *Session, 1), served: served}
	cert, tlsConf := testpki.Server(t)
	srv, err := serveOn(ServerConfig{Certificate: cert, Handler: h}, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := Dial(ctx, ClientConfig{Addr: udp.LocalAddr().String(), TLS: tlsConf, Header: bearer("good"), Routes: []netip.Prefix{overlay}})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	edge := <-served
	var rx counter
	go cs.Serve(&rx)

	const burst = 256
	mtu := edge.MTU()
	pkt := ipv4(site.Addr(), overlay.Addr(), 64, mtu)
	buf := make([]byte, len(pkt))
	w0, p0, b0 := cc.writes.Load(), cc.packets.Load(), cc.batched.Load()
	for range burst {
		copy(buf, pkt)
		if err := edge.WritePacket(buf); err != nil {
			t.Fatalf("write a %d-byte packet: %v", len(buf), err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for cc.packets.Load()-p0 < burst && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	writes, packets, batched := cc.writes.Load()-w0, cc.packets.Load()-p0, cc.batched.Load()-b0
	t.Logf("%d-byte inner packets: %d QUIC packets in %d sends (%d in batches), %d received", mtu, packets, writes, batched, rx.pkts.Load())
	if packets < burst {
		t.Fatalf("%d of %d packets sent", packets, burst)
	}
	if batched == 0 {
		t.Fatalf("%d of %d packets sent in GSO batches: full-size packets are not batched", batched, packets)
	}
}
