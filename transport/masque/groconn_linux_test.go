package masque

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
	"unsafe"

	xipv4 "golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// TestGROConnSplits: a GSO send of three full segments and a short one
// reaches a groConn as one coalesced datagram (UDP_GRO), and ReadBatch hands
// out the four segments, unchanged and in order, two per call here, each
// with the sender's address; a plain datagram after them comes whole.
func TestGROConnSplits(t *testing.T) {
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	rx, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	g, ok := withGRO(rx).(*groConn)
	if !ok {
		t.Skip("the kernel refuses UDP_GRO")
	}
	tx, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	const seg = 1000
	payload := make([]byte, 3*seg+500)
	for i := range payload {
		payload[i] = byte(i / seg * 7)
	}
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafePointer(oob))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], seg)
	if _, _, err := tx.WriteMsgUDP(payload, oob, rx.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Skipf("GSO send refused: %v", err)
	}
	plain := []byte("not coalesced")
	if _, err := tx.WriteToUDP(plain, rx.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}

	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	ms := make([]xipv4.Message, 2)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 1452)}
		ms[i].OOB = make([]byte, 64)
	}
	var got [][]byte
	for len(got) < 5 {
		n, err := g.ReadBatch(ms, 0)
		if err != nil {
			t.Fatalf("after %d segments: %v", len(got), err)
		}
		if n == 0 || n > len(ms) {
			t.Fatalf("ReadBatch returned %d messages for %d", n, len(ms))
		}
		if len(got) == 0 && g.seg != seg {
			t.Fatalf("the first read was not one coalesced datagram of %d-byte segments (segment size %d)", seg, g.seg)
		}
		for _, m := range ms[:n] {
			if m.Addr.String() != tx.LocalAddr().String() {
				t.Fatalf("segment from %v, want %v", m.Addr, tx.LocalAddr())
			}
			got = append(got, bytes.Clone(m.Buffers[0][:m.N]))
		}
	}
	want := [][]byte{payload[:seg], payload[seg : 2*seg], payload[2*seg : 3*seg], payload[3*seg:], plain}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("segment %d: %d bytes, want %d (% x…)", i, len(got[i]), len(want[i]), got[i][:min(4, len(got[i]))])
		}
	}
}

// unsafePointer is the address of b's first byte, for a control message header.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
