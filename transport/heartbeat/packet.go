package heartbeat

import (
	"encoding/binary"
	"net/netip"

	"github.com/switchyard/switchyard/internal/checksum"
)

// ParsePacket reads a probe out of an IPv4 or IPv6 packet addressed to UDP
// Port; ok is false for any other packet, or a malformed one.
func ParsePacket(pkt []byte) (m Message, ok bool) {
	udp, ok := udpPayload(pkt)
	if !ok || binary.BigEndian.Uint16(udp[2:4]) != Port {
		return Message{}, false
	}
	m, err := Parse(udp[8:])
	return m, err == nil && m.Type == Probe
}

// ParseReplyPacket reads a reply out of an IPv4 or IPv6 packet from UDP
// Port, and the address it came from (the edge's); ok is false for any
// other packet, or a malformed one.
func ParseReplyPacket(pkt []byte) (from netip.Addr, m Message, ok bool) {
	udp, ok := udpPayload(pkt)
	if !ok || binary.BigEndian.Uint16(udp[0:2]) != Port {
		return netip.Addr{}, Message{}, false
	}
	m, err := Parse(udp[8:])
	if err != nil || m.Type != Reply {
		return netip.Addr{}, Message{}, false
	}
	if pkt[0]>>4 == 4 {
		from = netip.AddrFrom4([4]byte(pkt[12:16]))
	} else {
		from = netip.AddrFrom16([16]byte(pkt[8:24]))
	}
	return from, m, true
}

// udpPayload returns the UDP header and payload of an unfragmented IPv4 or
// IPv6 (no extension headers) packet.
func udpPayload(pkt []byte) ([]byte, bool) {
	if len(pkt) < 1 {
		return nil, false
	}
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return nil, false
		}
		ihl, total := int(pkt[0]&0x0f)*4, int(binary.BigEndian.Uint16(pkt[2:4]))
		if pkt[9] != 17 || ihl < 20 || total < ihl || total > len(pkt) || binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
			return nil, false
		}
		l4 = pkt[ihl:total]
	case 6:
		if len(pkt) < 40 || pkt[6] != 17 {
			return nil, false
		}
		total := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if total > len(pkt) {
			return nil, false
		}
		l4 = pkt[40:total]
	default:
		return nil, false
	}
	if len(l4) < 8 || int(binary.BigEndian.Uint16(l4[4:6])) != len(l4) {
		return nil, false
	}
	return l4, true
}

// AppendReply appends to buf the IP packet that answers probe, a packet
// ParsePacket accepted: addresses and ports swapped, carrying reply. It
// returns buf unchanged if probe is not a UDP packet.
func AppendReply(buf, probe []byte, reply Message) []byte {
	udp, ok := udpPayload(probe)
	if !ok {
		return buf
	}
	var src, dst netip.Addr
	if probe[0]>>4 == 4 {
		src, dst = netip.AddrFrom4([4]byte(probe[12:16])), netip.AddrFrom4([4]byte(probe[16:20]))
	} else {
		src, dst = netip.AddrFrom16([16]byte(probe[8:24])), netip.AddrFrom16([16]byte(probe[24:40]))
	}
	from := netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:4]))
	to := netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:2]))
	return AppendPacket(buf, from, to, reply)
}

// AppendPacket appends to buf an IP packet (IPv4 or IPv6, as the addresses
// are) carrying m in a UDP datagram from src to dst, checksums filled in.
func AppendPacket(buf []byte, src, dst netip.AddrPort, m Message) []byte {
	return AppendPaddedPacket(buf, src, dst, m, 0)
}

// AppendPaddedPacket is AppendPacket with the datagram padded with zeros
// so that the IP packet is size bytes (if that is more than it needs): a
// probe of a path's MTU, which the edge answers like any other.
func AppendPaddedPacket(buf []byte, src, dst netip.AddrPort, m Message, size int) []byte {
	start := len(buf)
	ipLen := 40
	if src.Addr().Is4() {
		ipLen = 20
	}
	udpLen := max(8+Len, min(size, 0xffff)-ipLen)
	if src.Addr().Is4() {
		buf = append(buf, 0x45, 0)
		buf = binary.BigEndian.AppendUint16(buf, uint16(20+udpLen))
		buf = append(buf, 0, 0, 0x40, 0, 64, 17, 0, 0) // id 0, DF, TTL 64, UDP, checksum below
		buf = append(buf, src.Addr().AsSlice()...)
		buf = append(buf, dst.Addr().AsSlice()...)
		binary.BigEndian.PutUint16(buf[start+10:], ^checksum.Fold(checksum.Sum(buf[start:start+20], 0)))
	} else {
		buf = append(buf, 0x60, 0, 0, 0)
		buf = binary.BigEndian.AppendUint16(buf, uint16(udpLen))
		buf = append(buf, 17, 64)
		buf = append(buf, src.Addr().AsSlice()...)
		buf = append(buf, dst.Addr().AsSlice()...)
	}
	u := len(buf)
	buf = binary.BigEndian.AppendUint16(buf, src.Port())
	buf = binary.BigEndian.AppendUint16(buf, dst.Port())
	buf = binary.BigEndian.AppendUint16(buf, uint16(udpLen))
	buf = append(buf, 0, 0)
	buf = m.Append(buf)
	buf = append(buf, make([]byte, udpLen-8-Len)...)
	// Checksum over the pseudo-header (addresses, protocol, length) and the datagram.
	acc := checksum.Sum(src.Addr().AsSlice(), 0)
	acc = checksum.Sum(dst.Addr().AsSlice(), acc)
	acc += 17 + uint32(udpLen)
	c := ^checksum.Fold(checksum.Sum(buf[u:], acc))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(buf[u+6:], c)
	return buf
}
