package tun

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

const testMTU = 1420 // MSS 1380 over IPv4, 1360 over IPv6

func TestClampMSS(t *testing.T) {
	sackPerm := []byte{4, 2}
	ts := []byte{8, 10, 0, 0, 0, 1, 0, 0, 0, 0}
	ws := []byte{1, 3, 3, 7} // NOP, window scale 7
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	hopByHop := []byte{protoTCP, 0, 1, 4, 0, 0, 0, 0} // PadN option
	fragHdr := []byte{protoTCP, 0, 0, 0, 0, 0, 0, 1}

	tests := []struct {
		name    string
		spec    tcpSpec
		raw     func([]byte) // corrupts the built packet
		want    uint16       // MSS after clamping
		changed bool
	}{
		{"v4 syn", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460)}, nil, 1380, true},
		{"v4 syn-ack", tcpSpec{src: src4, dst: dst4, flags: flagSYN | flagACK, opts: mssOpt(1460)}, nil, 1380, true},
		{"v4 linux options", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: cat(mssOpt(65495), sackPerm, ts, ws)}, nil, 1380, true},
		{"v4 mss after timestamps", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: cat([]byte{1, 1}, ts, mssOpt(9000))}, nil, 1380, true},
		{"v4 mss at odd offset", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: cat([]byte{1}, mssOpt(1460), []byte{1, 1, 1})}, nil, 1380, true},
		{"v4 ip options", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460), ipOpts: []byte{1, 1, 1, 0}}, nil, 1380, true},
		{"v4 syn with payload", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460), payload: 33}, nil, 1380, true},
		{"v4 smaller mss kept", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1200)}, nil, 1200, false},
		{"v4 equal mss kept", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1380)}, nil, 1380, false},
		{"v4 no mss option", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: sackPerm}, nil, 0, false},
		{"v4 ack not clamped", tcpSpec{src: src4, dst: dst4, flags: flagACK, opts: mssOpt(1460)}, nil, 1460, false},
		{"v4 more fragments", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460), frag: 0x2000}, nil, 1460, false},
		{"v4 fragment offset", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460), frag: 0x0001}, nil, 1460, false},
		{"v4 dont fragment", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460), frag: 0x4000}, nil, 1380, true},
		{"v4 eol before mss", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: cat([]byte{0, 0, 0, 0}, mssOpt(1460))}, nil, 0, false},
		{"v4 mss bad length", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: []byte{2, 3, 5, 180}}, nil, 0, false},
		{"v4 option overruns header", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: cat(sackPerm, []byte{8, 40})}, nil, 0, false},
		{"v4 not tcp", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460)}, func(p []byte) { p[9] = 17 }, 1460, false},
		{"v4 total length past buffer", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460)}, func(p []byte) { p[2] = 0xff }, 1460, false},
		{"v4 ihl too small", tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460)}, func(p []byte) { p[0] = 0x44 }, 1460, false},
		{"v6 syn", tcpSpec{src: src6, dst: dst6, flags: flagSYN, opts: mssOpt(1440)}, nil, 1360, true},
		{"v6 syn-ack linux options", tcpSpec{src: src6, dst: dst6, flags: flagSYN | flagACK, opts: cat(mssOpt(65476), sackPerm, ts, ws)}, nil, 1360, true},
		{"v6 hop-by-hop", tcpSpec{src: src6, dst: dst6, flags: flagSYN, opts: mssOpt(1440), ext6: hopByHop, ext6Next: ext6HopByHop}, nil, 1360, true},
		{"v6 fragment header", tcpSpec{src: src6, dst: dst6, flags: flagSYN, opts: mssOpt(1440), ext6: fragHdr, ext6Next: 44}, nil, 1440, false},
		{"v6 smaller mss kept", tcpSpec{src: src6, dst: dst6, flags: flagSYN, opts: mssOpt(1220)}, nil, 1220, false},
		{"v6 payload length past buffer", tcpSpec{src: src6, dst: dst6, flags: flagSYN, opts: mssOpt(1440)}, func(p []byte) { p[4] = 0xff }, 1440, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := buildPacket(tt.spec)
			if tt.raw != nil {
				tt.raw(pkt)
			}
			before := bytes.Clone(pkt)
			changed := ClampMSS(pkt, testMTU-mssOverhead4, testMTU-mssOverhead6)
			if changed != tt.changed {
				t.Fatalf("ClampMSS changed = %v, want %v", changed, tt.changed)
			}
			if !changed {
				if !bytes.Equal(pkt, before) {
					t.Fatalf("packet modified although ClampMSS reported no change")
				}
				return
			}
			if got := packetMSS(pkt); got != tt.want {
				t.Errorf("mss = %d, want %d", got, tt.want)
			}
			if !tcpChecksumValid(pkt) {
				t.Errorf("tcp checksum invalid after clamping")
			}
			if n := diffCount(before, pkt); n > 4 {
				t.Errorf("%d bytes changed, want at most 4 (mss and checksum)", n)
			}
		})
	}
}

func TestChecksumUpdateRandomWords(t *testing.T) {
	// Compare the incremental update with recomputation on a checksummed
	// packet for every MSS value.
	for mss := 1381; mss <= 0xffff; mss += 97 {
		pkt := buildPacket(tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(uint16(mss))})
		if !ClampMSS(pkt, 1380, 1360) {
			t.Fatalf("mss %d: not clamped", mss)
		}
		if !tcpChecksumValid(pkt) {
			t.Fatalf("mss %d: checksum invalid", mss)
		}
	}
}

func diffCount(a, b []byte) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func TestNewMSSClampMTU(t *testing.T) {
	for _, mtu := range []int{0, MinMTU - 1, MaxMTU + 1} {
		if _, err := NewMSSClamp(nil, mtu); !errors.Is(err, ErrInvalidMTU) {
			t.Errorf("NewMSSClamp(mtu %d) error = %v, want ErrInvalidMTU", mtu, err)
		}
	}
}

// batchTUN is a tun.Device that returns a fixed batch from Read and drops
// writes; it allocates nothing. With lens set, Read leaves the buffers as
// they are and only reports those sizes.
type batchTUN struct {
	pkts    [][]byte
	lens    []int
	written int
}

var _ wgtun.Device = (*batchTUN)(nil)

func (d *batchTUN) File() *os.File { return nil }
func (d *batchTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if d.lens != nil {
		return copy(sizes, d.lens), nil
	}
	n := min(len(bufs), len(d.pkts))
	for i := range n {
		sizes[i] = copy(bufs[i][offset:], d.pkts[i])
	}
	return n, nil
}
func (d *batchTUN) Write(bufs [][]byte, offset int) (int, error) {
	d.written += len(bufs)
	return len(bufs), nil
}
func (d *batchTUN) MTU() (int, error)          { return testMTU, nil }
func (d *batchTUN) Name() (string, error)      { return "batch0", nil }
func (d *batchTUN) Events() <-chan wgtun.Event { return nil }
func (d *batchTUN) Close() error               { return nil }
func (d *batchTUN) BatchSize() int             { return len(d.pkts) }

const testOffset = 16 // wireguard-go's MessageTransportHeaderSize

// testBatch returns a batch of bufs with room for a 16-byte offset holding
// one SYN per family and n-2 full-size data segments.
func testBatch(n int) (pkts [][]byte, bufs [][]byte) {
	pkts = append(pkts,
		buildPacket(tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460)}),
		buildPacket(tcpSpec{src: src6, dst: dst6, flags: flagSYN | flagACK, opts: mssOpt(1440)}))
	for len(pkts) < n {
		pkts = append(pkts, buildPacket(tcpSpec{src: src4, dst: dst4, flags: flagACK, payload: testMTU - 40}))
	}
	for range pkts {
		bufs = append(bufs, make([]byte, testOffset+2048))
	}
	return pkts, bufs
}

func TestMSSClampBatch(t *testing.T) {
	pkts, bufs := testBatch(8)
	inner := &batchTUN{pkts: pkts}
	c, err := NewMSSClamp(inner, testMTU)
	if err != nil {
		t.Fatal(err)
	}
	sizes := make([]int, len(bufs))
	n, err := c.Read(bufs, sizes, testOffset)
	if err != nil || n != len(pkts) {
		t.Fatalf("Read = %d, %v; want %d, nil", n, err, len(pkts))
	}
	for i := range n {
		pkt := bufs[i][testOffset : testOffset+sizes[i]]
		if !tcpChecksumValid(pkt) {
			t.Errorf("packet %d: checksum invalid", i)
		}
	}
	if got := packetMSS(bufs[0][testOffset:]); got != 1380 {
		t.Errorf("v4 mss after Read = %d, want 1380", got)
	}
	if got := packetMSS(bufs[1][testOffset:]); got != 1360 {
		t.Errorf("v6 mss after Read = %d, want 1360", got)
	}
	if got := c.Stats(); got != (ClampStats{Read: 2}) {
		t.Errorf("Stats after Read = %+v, want Read 2", got)
	}

	wbufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		wbufs[i] = append(make([]byte, testOffset), p...)
	}
	if _, err := c.Write(wbufs, testOffset); err != nil {
		t.Fatal(err)
	}
	if got := packetMSS(wbufs[0][testOffset:]); got != 1380 {
		t.Errorf("v4 mss after Write = %d, want 1380", got)
	}
	if got := c.Stats(); got != (ClampStats{Read: 2, Written: 2}) {
		t.Errorf("Stats after Write = %+v, want Read 2, Written 2", got)
	}
}

func TestMSSClampAllocs(t *testing.T) {
	pkts, bufs := testBatch(16)
	c, err := NewMSSClamp(&batchTUN{pkts: pkts}, testMTU)
	if err != nil {
		t.Fatal(err)
	}
	sizes := make([]int, len(bufs))
	wbufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		wbufs[i] = append(make([]byte, testOffset), p...)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Read(bufs, sizes, testOffset); err != nil {
			t.Fatal(err)
		}
		// Restore a clampable MSS so every run does the full work.
		copy(wbufs[0][testOffset:], pkts[0])
		if _, err := c.Write(wbufs, testOffset); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Read+Write allocate %v times per batch, want 0", allocs)
	}
}

// TestMSSClampChannelTUN runs SYNs through wireguard-go's ChannelTUN: the
// host side's Outbound is what Read returns, Inbound receives what Write
// wrote.
func TestMSSClampChannelTUN(t *testing.T) {
	ch := tuntest.NewChannelTUN()
	c, err := NewMSSClamp(ch.TUN(), testMTU)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Host to tunnel: the kernel hands a SYN to Read.
	syn := buildPacket(tcpSpec{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460)})
	go func() { ch.Outbound <- syn }()
	bufs := [][]byte{make([]byte, testOffset+1500)}
	sizes := make([]int, 1)
	n, err := c.Read(bufs, sizes, testOffset)
	if err != nil || n != 1 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	got := bufs[0][testOffset : testOffset+sizes[0]]
	if mss := packetMSS(got); mss != 1380 || !tcpChecksumValid(got) {
		t.Errorf("read SYN: mss %d, checksum valid %v; want 1380, true", mss, tcpChecksumValid(got))
	}

	// Tunnel to host: a SYN-ACK written towards the kernel.
	synack := buildPacket(tcpSpec{src: src6, dst: dst6, flags: flagSYN | flagACK, opts: mssOpt(8940)})
	wbuf := append(make([]byte, testOffset), synack...)
	inbound := make(chan []byte, 1)
	go func() { inbound <- <-ch.Inbound }() // ChannelTUN.Write blocks until Inbound is read
	if _, err := c.Write([][]byte{wbuf}, testOffset); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-inbound:
		if mss := packetMSS(got); mss != 1360 || !tcpChecksumValid(got) {
			t.Errorf("written SYN-ACK: mss %d, checksum valid %v; want 1360, true", mss, tcpChecksumValid(got))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for the written packet")
	}
	if s := c.Stats(); s != (ClampStats{Read: 1, Written: 1}) {
		t.Errorf("Stats = %+v, want Read 1, Written 1", s)
	}
}

func BenchmarkMSSClampRead(b *testing.B) {
	const batch = 128
	pkts, bufs := testBatch(batch + 2)
	pkts, bufs = pkts[2:], bufs[2:] // data segments only
	lens := make([]int, len(pkts))
	for i, p := range pkts {
		lens[i] = copy(bufs[i][testOffset:], p)
	}
	c, err := NewMSSClamp(&batchTUN{lens: lens}, testMTU)
	if err != nil {
		b.Fatal(err)
	}
	sizes := make([]int, len(bufs))
	b.ReportAllocs()
	b.SetBytes(int64(batch * len(pkts[0])))
	for b.Loop() {
		if _, err := c.Read(bufs, sizes, testOffset); err != nil {
			b.Fatal(err)
		}
	}
}
