package tun

import (
	"encoding/binary"
	"net/netip"

	"github.com/switchyard/switchyard/internal/checksum"
)

// Test packet construction and verification, kept out of production files.

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
func mssOpt(mss uint16) []byte { return []byte{2, 4, byte(mss >> 8), byte(mss)} }

// buildPacket returns an IP packet carrying a TCP segment with a valid
// checksum.
func buildPacket(s tcpSpec) []byte {
	opts := append([]byte(nil), s.opts...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	tcpLen := 20 + len(opts) + s.payload
	tcp := make([]byte, tcpLen)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 443)
	binary.BigEndian.PutUint32(tcp[4:], 0x01020304)
	tcp[12] = byte((20+len(opts))/4) << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[20:], opts)
	for i := range s.payload {
		tcp[20+len(opts)+i] = byte(i)
	}
	var pkt []byte
	if s.src.Is4() {
		ihl := 20 + len(s.ipOpts)
		pkt = make([]byte, ihl+tcpLen)
		pkt[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		binary.BigEndian.PutUint16(pkt[6:], s.frag)
		pkt[8] = 64
		pkt[9] = protoTCP
		a, b := s.src.As4(), s.dst.As4()
		copy(pkt[12:], a[:])
		copy(pkt[16:], b[:])
		copy(pkt[20:], s.ipOpts)
		binary.BigEndian.PutUint16(pkt[10:], ^checksum.Fold(checksum.Sum(pkt[:ihl], 0)))
		copy(pkt[ihl:], tcp)
	} else {
		pkt = make([]byte, 40+len(s.ext6)+tcpLen)
		pkt[0] = 0x60
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(s.ext6)+tcpLen))
		pkt[6] = protoTCP
		if len(s.ext6) > 0 {
			pkt[6] = s.ext6Next
		}
		pkt[7] = 64
		a, b := s.src.As16(), s.dst.As16()
		copy(pkt[8:], a[:])
		copy(pkt[24:], b[:])
		copy(pkt[40:], s.ext6)
		copy(pkt[40+len(s.ext6):], tcp)
	}
	setTCPChecksum(pkt)
	return pkt
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

// setTCPChecksum computes the TCP checksum from scratch.
func setTCPChecksum(pkt []byte) {
	start, _, _ := tcpBounds(pkt)
	binary.BigEndian.PutUint16(pkt[start+16:], 0)
	binary.BigEndian.PutUint16(pkt[start+16:], ^tcpChecksumSum(pkt))
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
