// Package packettest builds IPv4 and IPv6 packets for tests, UDP datagrams,
// TCP segments and ICMP echo requests, and verifies the checksums of packets
// that code under test produced.
//
// Every builder returns a fresh packet whose IPv4 header checksum and
// transport checksum (over the RFC 768/793/4443 pseudo header) are valid, so
// a test that wants a broken packet breaks it on purpose after building.
// Addresses come from the caller; use the RFC 5737 and RFC 3849 ranges.
//
// The package is test-only: import it from _test.go files, never from
// production code. It imports only the standard library and
// internal/checksum, and builds on every platform.
package packettest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/switchyard/switchyard/internal/checksum"
)

// IP protocol numbers of the transports the builders make.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flags, for TCPHeader.Flags.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
)

// DefaultTTL is the TTL (hop limit) of a packet whose IP.TTL is 0.
const DefaultTTL = 64

// IP describes the network layer of a packet. The zero value of every field
// but the addresses is a plain header: TTL 64, no fragmentation bits, no
// options or extension headers.
type IP struct {
	// Src and Dst are the addresses; both IPv4 or both IPv6.
	Src, Dst netip.Addr
	// TTL is the IPv4 TTL or IPv6 hop limit; 0 means DefaultTTL.
	TTL uint8
	// DF sets IPv4's Don't Fragment flag.
	DF bool
	// MF sets IPv4's More Fragments flag.
	MF bool
	// FragOffset is the IPv4 fragment offset in 8-byte units (13 bits).
	FragOffset uint16
	// Options are IPv4 options, copied as they are; a multiple of 4 bytes.
	Options []byte
	// Ext are IPv6 extension headers placed between the fixed header and the
	// transport header, copied as they are: the caller sets their Next Header
	// fields (the last one's to the transport protocol).
	Ext []byte
	// ExtProto is the fixed IPv6 header's Next Header when Ext is set.
	ExtProto uint8
}

// TCPHeader describes a TCP header.
type TCPHeader struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8 // FIN, SYN, RST, PSH, ACK
	Window           uint16
	// Options are TCP options (see MSS), padded with zeros (end of option
	// list) to a multiple of 4 bytes.
	Options []byte
}

// MSS returns a TCP Maximum Segment Size option (kind 2, length 4).
func MSS(mss uint16) []byte { return []byte{2, 4, byte(mss >> 8), byte(mss)} }

// Fill returns n payload bytes counting up from 0 (modulo 256), which unlike
// zeros make a checksum depend on every byte.
func Fill(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// UDP returns an IP packet carrying a UDP datagram from port src to port dst
// with payload.
func UDP(ip IP, src, dst uint16, payload []byte) []byte {
	u := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], src)
	binary.BigEndian.PutUint16(u[2:], dst)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	return build(ip, ProtoUDP, u, 6)
}

// TCP returns an IP packet carrying a TCP segment with header h and payload.
func TCP(ip IP, h TCPHeader, payload []byte) []byte {
	opts := len(h.Options) + (4-len(h.Options)%4)%4
	t := make([]byte, 20+opts+len(payload))
	binary.BigEndian.PutUint16(t[0:], h.SrcPort)
	binary.BigEndian.PutUint16(t[2:], h.DstPort)
	binary.BigEndian.PutUint32(t[4:], h.Seq)
	binary.BigEndian.PutUint32(t[8:], h.Ack)
	t[12] = byte((20+opts)/4) << 4
	t[13] = h.Flags
	binary.BigEndian.PutUint16(t[14:], h.Window)
	copy(t[20:], h.Options)
	copy(t[20+opts:], payload)
	return build(ip, ProtoTCP, t, 16)
}

// Echo returns an ICMP echo request (ICMPv6 for IPv6 addresses) with
// identifier id, sequence number seq and payload.
func Echo(ip IP, id, seq uint16, payload []byte) []byte {
	e := make([]byte, 8+len(payload))
	proto := uint8(ProtoICMP)
	e[0] = 8
	if ip.Src.Is6() {
		proto, e[0] = ProtoICMPv6, 128
	}
	binary.BigEndian.PutUint16(e[4:], id)
	binary.BigEndian.PutUint16(e[6:], seq)
	copy(e[8:], payload)
	return build(ip, proto, e, 2)
}

// build wraps the transport segment l4 (its checksum field at csumAt zero) in
// the IP header ip describes and fills in every checksum.
func build(ip IP, proto uint8, l4 []byte, csumAt int) []byte {
	if !ip.Src.IsValid() || !ip.Dst.IsValid() || ip.Src.Is4() != ip.Dst.Is4() {
		panic(fmt.Sprintf("packettest: addresses %v and %v are not of one family", ip.Src, ip.Dst))
	}
	ttl := ip.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	var pkt []byte
	if ip.Src.Is4() {
		if len(ip.Options)%4 != 0 || len(ip.Options) > 40 {
			panic(fmt.Sprintf("packettest: %d bytes of IPv4 options, want a multiple of 4 up to 40", len(ip.Options)))
		}
		ihl := 20 + len(ip.Options)
		pkt = make([]byte, ihl+len(l4))
		pkt[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		frag := ip.FragOffset & 0x1fff
		if ip.DF {
			frag |= 0x4000
		}
		if ip.MF {
			frag |= 0x2000
		}
		binary.BigEndian.PutUint16(pkt[6:], frag)
		pkt[8], pkt[9] = ttl, proto
		s, d := ip.Src.As4(), ip.Dst.As4()
		copy(pkt[12:], s[:])
		copy(pkt[16:], d[:])
		copy(pkt[20:], ip.Options)
		binary.BigEndian.PutUint16(pkt[10:], ^checksum.Fold(checksum.Sum(pkt[:ihl], 0)))
		copy(pkt[ihl:], l4)
	} else {
		hdr := 40 + len(ip.Ext)
		pkt = make([]byte, hdr+len(l4))
		pkt[0] = 0x60
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(ip.Ext)+len(l4)))
		pkt[6], pkt[7] = proto, ttl
		if len(ip.Ext) > 0 {
			pkt[6] = ip.ExtProto
		}
		s, d := ip.Src.As16(), ip.Dst.As16()
		copy(pkt[8:], s[:])
		copy(pkt[24:], d[:])
		copy(pkt[40:], ip.Ext)
		copy(pkt[hdr:], l4)
	}
	seg := pkt[len(pkt)-len(l4):]
	binary.BigEndian.PutUint16(seg[csumAt:], ^transportSum(pkt, proto, seg))
	return pkt
}

// transportSum returns the folded sum over seg, plus the pseudo header of
// pkt's addresses for every protocol but ICMPv4 (which has none).
func transportSum(pkt []byte, proto uint8, seg []byte) uint16 {
	var acc uint32
	if proto != ProtoICMP {
		if pkt[0]>>4 == 4 {
			acc = checksum.Sum(pkt[12:20], 0)
		} else {
			acc = checksum.Sum(pkt[8:40], 0)
		}
		acc += uint32(proto) + uint32(len(seg))
	}
	return checksum.Fold(checksum.Sum(seg, acc))
}

// IPv6 extension headers that Verify walks.
const (
	ext6HopByHop = 0
	ext6Routing  = 43
	ext6Fragment = 44
	ext6DestOpts = 60
)

// Verify checks pkt's lengths, its IPv4 header checksum and, for TCP, UDP,
// ICMP and ICMPv6, its transport checksum, and names the first fault. A UDP
// checksum of zero (none, which IPv4 permits) is a fault too: the builders
// and the code under test always set one. Trailing bytes past the IP length
// are ignored, as a receiver would; the transport of a fragment, and of
// other protocols, is not checked.
func Verify(pkt []byte) error {
	if len(pkt) < 1 {
		return errors.New("verify packet: empty")
	}
	var proto uint8
	var off, end int
	fragment := false
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return fmt.Errorf("verify IPv4 packet: %d bytes, shorter than a header", len(pkt))
		}
		off, end = int(pkt[0]&0x0f)*4, int(binary.BigEndian.Uint16(pkt[2:]))
		if off < 20 || end < off || end > len(pkt) {
			return fmt.Errorf("verify IPv4 packet: header length %d, total length %d in %d bytes", off, end, len(pkt))
		}
		if checksum.Fold(checksum.Sum(pkt[:off], 0)) != 0xffff {
			return errors.New("verify IPv4 packet: bad header checksum")
		}
		proto = pkt[9]
		fragment = binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0
	case 6:
		if len(pkt) < 40 {
			return fmt.Errorf("verify IPv6 packet: %d bytes, shorter than a header", len(pkt))
		}
		off, end = 40, 40+int(binary.BigEndian.Uint16(pkt[4:]))
		if end > len(pkt) {
			return fmt.Errorf("verify IPv6 packet: payload length %d in %d bytes", end-40, len(pkt))
		}
		proto = pkt[6]
	walk:
		for {
			switch proto {
			case ext6HopByHop, ext6Routing, ext6DestOpts, ext6Fragment:
			default:
				break walk
			}
			if off+8 > end {
				return fmt.Errorf("verify IPv6 packet: extension header %d overruns the payload", proto)
			}
			n := (int(pkt[off+1]) + 1) * 8
			if proto == ext6Fragment {
				n = 8
				fragment = fragment || binary.BigEndian.Uint16(pkt[off+2:])&0xfff9 != 0
			}
			proto, off = pkt[off], off+n
			if off > end {
				return fmt.Errorf("verify IPv6 packet: extension headers overrun the payload")
			}
		}
	default:
		return fmt.Errorf("verify packet: IP version %d", pkt[0]>>4)
	}
	if fragment {
		return nil
	}
	seg := pkt[off:end]
	var name string
	switch proto {
	case ProtoTCP:
		name = "TCP"
		if len(seg) < 20 {
			return fmt.Errorf("verify TCP segment: %d bytes, shorter than a header", len(seg))
		}
	case ProtoUDP:
		name = "UDP"
		if len(seg) < 8 || int(binary.BigEndian.Uint16(seg[4:])) != len(seg) {
			return fmt.Errorf("verify UDP datagram: length field does not match %d bytes", len(seg))
		}
		if binary.BigEndian.Uint16(seg[6:]) == 0 {
			return errors.New("verify UDP datagram: no checksum")
		}
	case ProtoICMP, ProtoICMPv6:
		name = "ICMP"
		if len(seg) < 8 {
			return fmt.Errorf("verify ICMP message: %d bytes, shorter than a header", len(seg))
		}
	default:
		return nil
	}
	if transportSum(pkt, proto, seg) != 0xffff {
		return fmt.Errorf("verify %s: bad checksum", name)
	}
	return nil
}
