package tun

import (
	"encoding/binary"
	"net/netip"

	"github.com/switchyard/switchyard/internal/checksum"
	"github.com/switchyard/switchyard/internal/packettest"
)

// Test packet construction (internal/packettest) and the verification that
// follows ClampMSS's own parsing, kept out of production files.

var (
	src4 = netip.MustParseAddr("192.0.2.10")
	dst4 = netip.MustParseAddr("198.51.100.20")
	src6 = netip.MustParseAddr("2001:db8::10")
	dst6 = netip.MustParseAddr("2001:db8:1::20")
)

// tcpSpec describes a TCP segment for buildPacket.
type tcpSpec struct {
	src, dst netip.Addr
	flags    byte
	opts     []byte // TCP options, padded to 4 bytes by buildPacket
	payload  int    // payload length
	ipOpts   []byte // IPv4 options (multiple of 4 bytes)
	ext6     []byte // IPv6 extension headers (their first next-header is set by the caller)
	ext6Next byte   // IPv6 next header when ext6 is set
	frag     uint16 // IPv4 flags+fragment offset field
}

const (
	flagSYN = 0x02
	flagACK = 0x10
)

// mssOpt returns a TCP MSS option.
func mssOpt(mss uint16) []byte { return packettest.MSS(mss) }

// buildPacket returns an IP packet carrying a TCP segment with valid
// checksums, from port 40000 to 443.
func buildPacket(s tcpSpec) []byte {
	ip := packettest.IP{
		Src: s.src, Dst: s.dst,
		DF: s.frag&0x4000 != 0, MF: s.frag&0x2000 != 0, FragOffset: s.frag & 0x1fff,
		Options: s.ipOpts, Ext: s.ext6, ExtProto: s.ext6Next,
	}
	h := packettest.TCPHeader{SrcPort: 40000, DstPort: 443, Seq: 0x01020304, Flags: s.flags, Window: 64240, Options: s.opts}
	return packettest.TCP(ip, h, packettest.Fill(s.payload))
}

// tcpBounds returns where the TCP segment of a packet built by buildPacket
// starts and ends, and whether it is IPv6.
func tcpBounds(pkt []byte) (start, end int, v6 bool) {
	if pkt[0]>>4 == 4 {
		return int(pkt[0]&0x0f) * 4, int(binary.BigEndian.Uint16(pkt[2:])), false
	}
	end = 40 + int(binary.BigEndian.Uint16(pkt[4:]))
	next, off := pkt[6], 40
	for next == ext6HopByHop || next == ext6Routing || next == ext6DestOpts {
		next, off = pkt[off], off+(int(pkt[off+1])+1)*8
	}
	return off, end, true
}

// tcpChecksumSum returns the folded one's-complement sum over the pseudo
// header and the TCP segment, checksum field included: 0xffff when valid.
func tcpChecksumSum(pkt []byte) uint16 {
	start, end, v6 := tcpBounds(pkt)
	var sum uint32
	if v6 {
		sum = checksum.Sum(pkt[8:40], 0)
	} else {
		sum = checksum.Sum(pkt[12:20], 0)
	}
	sum += protoTCP + uint32(end-start)
	return checksum.Fold(checksum.Sum(pkt[start:end], sum))
}

// tcpChecksumValid verifies the TCP checksum from scratch.
func tcpChecksumValid(pkt []byte) bool { return tcpChecksumSum(pkt) == 0xffff }

// packetMSS returns the MSS option value of a packet built by buildPacket,
// or 0 if it has none.
func packetMSS(pkt []byte) uint16 {
	off := mssOffset(pkt)
	if off < 0 {
		return 0
	}
	return binary.BigEndian.Uint16(pkt[off:])
}

// mssOffset returns the offset in pkt of the first MSS option's value, or
// -1. pkt must have well-formed TCP options up to that option.
func mssOffset(pkt []byte) int {
	start, _, _ := tcpBounds(pkt)
	tcp := pkt[start:]
	doff := int(tcp[12]>>4) * 4
	for i := 20; i < doff; {
		switch tcp[i] {
		case 0:
			return -1
		case 1:
			i++
			continue
		case 2:
			return start + i + 2
		}
		i += int(tcp[i+1])
	}
	return -1
}
