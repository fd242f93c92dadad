package agent

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/switchyard/switchyard/internal/checksum"
)

// recTUN is a sharedTUN that hands out one batch and records what is
// written into it.
type recTUN struct {
	in      [][]byte
	written [][]byte
}

func (r *recTUN) File() *os.File { return nil }
func (r *recTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	for i, p := range r.in {
		sizes[i] = copy(bufs[i][offset:], p)
		n++
	}
	r.in = nil
	return n, nil
}
func (r *recTUN) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		r.written = append(r.written, append([]byte(nil), b[offset:]...))
	}
	return len(bufs), nil
}
func (r *recTUN) MTU() (int, error)                 { return 1280, nil }
func (r *recTUN) Name() (string, error)             { return "rec", nil }
func (r *recTUN) Events() <-chan wgtun.Event        { return nil }
func (r *recTUN) BatchSize() int                    { return 4 }
func (r *recTUN) Close() error                      { return nil }
func (r *recTUN) SetReadDeadline(t time.Time) error { return nil }

// ipv4Packet is an IPv4 UDP packet of n bytes from src to dst, with DF if df.
func ipv4Packet(src, dst string, n int, df bool) []byte {
	p := make([]byte, n)
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	if df {
		p[6] = 0x40
	}
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], ^checksum.Fold(checksum.Sum(p[:20], 0)))
	binary.BigEndian.PutUint16(p[24:], uint16(n-20))
	return p
}

// TestTUNViewTooBig4: with an IPv4 path MTU below 1280 (the TUN stays at
// 1280 for IPv6), an IPv4 packet with DF above it is taken out of the batch
// and answered with Fragmentation Needed naming the MTU, from its
// destination, written into the TUN; one without DF and one that fits go on;
// at the TUN's own MTU nothing is answered.
func TestTUNViewTooBig4(t *testing.T) {
	rec := &recTUN{}
	v := newTUNView(rec)
	v.setMTU(1196)
	if m, _ := v.MTU(); m != 1196 {
		t.Fatalf("view MTU %d, want 1196 (wireguard-go's padding cap)", m)
	}
	rec.in = [][]byte{
		ipv4Packet("192.0.2.5", "198.51.100.7", 1250, true),
		ipv4Packet("192.0.2.5", "198.51.100.7", 1250, false),
		ipv4Packet("192.0.2.5", "198.51.100.7", 1196, true),
	}
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, 16+1500)
	}
	sizes := make([]int, 4)
	n, err := v.Read(bufs, sizes, 16)
	if err != nil || n != 3 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if sizes[0] != 0 || sizes[1] != 1250 || sizes[2] != 1196 {
		t.Fatalf("sizes %v, want the DF packet over the MTU taken out only", sizes[:3])
	}
	if len(rec.written) != 1 {
		t.Fatalf("%d packets written into the TUN, want one ICMP error", len(rec.written))
	}
	r := rec.written[0]
	if netip.AddrFrom4([4]byte(r[12:16])) != netip.MustParseAddr("198.51.100.7") || r[20] != 3 || r[21] != 4 || binary.BigEndian.Uint16(r[26:28]) != 1196 {
		t.Fatalf("ICMP error from %v type %d code %d mtu %d", netip.AddrFrom4([4]byte(r[12:16])), r[20], r[21], binary.BigEndian.Uint16(r[26:28]))
	}
	v.setMTU(1280)
	rec.in, rec.written = [][]byte{ipv4Packet("192.0.2.5", "198.51.100.7", 1250, true)}, nil
	if n, _ := v.Read(bufs, sizes, 16); n != 1 || sizes[0] != 1250 || len(rec.written) != 0 {
		t.Fatalf("at 1280: n %d size %d, %d written", n, sizes[0], len(rec.written))
	}
	v.Close()
}
