package wireguard

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// framedCollector records, for each packet, its framing header and its IP
// packet, and checks the headroom in front of them.
type framedCollector struct {
	framing, room int
	ch            chan [2][]byte
	bad           chan int // Off values that break the buffer contract
}

func (c *framedCollector) Receive(pkts []Packet) {
	for _, p := range pkts {
		if p.Off != c.room+Headroom+c.framing || cap(p.Buf)-len(p.Buf) < Tailroom {
			c.bad <- p.Off
			continue
		}
		c.ch <- [2][]byte{bytes.Clone(p.Buf[p.Off-c.framing : p.Off]), bytes.Clone(p.Data())}
	}
}

// TestTrunkPeersBothInitiate peers two of our endpoints with each other, each
// with the other's address and a persistent keepalive (the initiator role on
// both sides, as the edges of a cluster peer), both starting a handshake at
// once; framed packets then cross in both directions, with the framing in
// front of Packet.Off and the receive headroom in front of that.
func TestTrunkPeersBothInitiate(t *testing.T) {
	const framing, room = 12, 12
	lo := netip.MustParseAddr("127.0.0.1")
	var eps [2]*Endpoint
	var cols [2]*framedCollector
	for i := range eps {
		bind, err := NewAddrBind(lo)
		if err != nil {
			t.Fatal(err)
		}
		cols[i] = &framedCollector{framing: framing, room: room, ch: make(chan [2][]byte, 16), bad: make(chan int, 16)}
		eps[i] = newTestEndpoint(t, Config{Bind: bind, Receiver: cols[i], ReceiveHeadroom: room})
	}
	var sess [2]*Session
	for i, e := range eps {
		other := eps[1-i]
		s, err := e.AddPeer(PeerConfig{PublicKey: other.PublicKey(), Endpoint: netip.AddrPortFrom(lo, other.Port()),
			PersistentKeepalive: time.Second, Framing: framing, Value: i})
		if err != nil {
			t.Fatal(err)
		}
		sess[i] = s
	}
	eps[0].Handshake(sess[0])
	eps[1].Handshake(sess[1])
	deadline := time.Now().Add(5 * time.Second)
	for !(sess[0].Established() && sess[1].Established()) {
		if time.Now().After(deadline) {
			t.Fatal("no session established between the two initiators")
		}
		time.Sleep(10 * time.Millisecond)
	}
	hdr := []byte{0x11, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
	for i := range eps {
		pkt := ipv4Packet(100 + i)
		buf := make([]byte, Headroom+framing+len(pkt), Headroom+framing+len(pkt)+Tailroom)
		copy(buf[Headroom:], hdr)
		copy(buf[Headroom+framing:], pkt)
		if err := eps[i].Send(sess[i], [][]byte{buf}, Headroom); err != nil {
			t.Fatalf("endpoint %d: send: %v", i, err)
		}
		select {
		case got := <-cols[1-i].ch:
			if !bytes.Equal(got[0], hdr) || !bytes.Equal(got[1], pkt) {
				t.Fatalf("endpoint %d received header %x packet %x, want %x and %x", 1-i, got[0], got[1], hdr, pkt)
			}
		case off := <-cols[1-i].bad:
			t.Fatalf("endpoint %d: packet at offset %d, want %d with tailroom", 1-i, off, room+Headroom+framing)
		case <-time.After(5 * time.Second):
			t.Fatalf("endpoint %d received nothing", 1-i)
		}
	}
}

// TestFramingRejectsShortPackets: a framed peer's message no longer than its
// framing, or without an IP packet after it, is malformed.
func TestFramingRejectsShortPackets(t *testing.T) {
	col := &framedCollector{framing: 12, ch: make(chan [2][]byte, 4), bad: make(chan int, 4)}
	a, b, ba, _, sa, _ := connectedCapPair(t, ReceiverFunc(func([]Packet) {}), col)
	if _, err := b.AddPeer(PeerConfig{PublicKey: a.PublicKey(), Framing: 12}); err != nil {
		t.Fatal(err)
	}
	before := b.Stats().DroppedMalformed
	for _, n := range []int{4, 12, 20} { // shorter than, equal to, and a non-IP tail after the framing
		buf := make([]byte, Headroom+n, Headroom+n+Tailroom)
		if err := a.Send(sa, [][]byte{buf}, Headroom); err != nil {
			t.Fatal(err)
		}
		deliver(b, ba.take(t))
	}
	if got := b.Stats().DroppedMalformed - before; got != 3 {
		t.Fatalf("dropped_malformed grew by %d, want 3", got)
	}
	select {
	case p := <-col.ch:
		t.Fatalf("delivered %x", p)
	default:
	}
}
