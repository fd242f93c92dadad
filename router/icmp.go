package router

import (
	"encoding/binary"
	"net/netip"

	"github.com/switchyard/switchyard/internal/checksum"
)

// IcmpBufSize is enough scratch space for any ICMP error Route builds.
const IcmpBufSize = 1280

// Quotation limits: an IPv4 error stays within 576 bytes (RFC 1812 4.3.2.3),
// an IPv6 error within the minimum MTU (RFC 4443 2.4).
const (
	maxICMP4 = 576
	maxICMP6 = 1280
)

// mayAnswer applies the rules against errors about errors (RFC 1122 3.2.2,
// RFC 4443 2.4): no error for an ICMP error, a non-first fragment, or a source
// that is not a unicast address.
func mayAnswer(pkt []byte, h header) bool {
	if h.fragment || !h.src.IsValid() || h.src.IsUnspecified() || h.src.IsMulticast() || h.src.IsLoopback() {
		return false
	}
	if !h.v6 && h.src == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	if len(pkt) > h.ihl {
		t := pkt[h.ihl]
		if !h.v6 && h.proto == 1 && t != 0 && t != 8 && t != 13 && t != 15 && t != 17 {
			return false // an IPv4 ICMP error (only echo and other queries may be answered)
		}
		if h.v6 && h.proto == 58 && t < 128 {
			return false // an ICMPv6 error
		}
	}
	return true
}

// icmpType returns the ICMP type and code for a reason.
func icmpType(reason Reason, v6 bool) (typ, code uint8) {
	switch {
	case reason == ReasonTTLExceeded && !v6:
		return 11, 0 // time exceeded in transit
	case reason == ReasonTTLExceeded:
		return 3, 0 // hop limit exceeded in transit
	case reason == ReasonTunnelDown && !v6:
		return 3, 1 // host unreachable
	case reason == ReasonTunnelDown:
		return 1, 3 // address unreachable
	case reason == ReasonPolicy && !v6:
		return 3, 13 // communication administratively prohibited
	case reason == ReasonPolicy:
		return 1, 1 // communication with destination administratively prohibited
	case reason == ReasonTooBig && !v6:
		return 3, 4 // fragmentation needed and DF set
	case reason == ReasonTooBig:
		return 2, 0 // packet too big
	case !v6:
		return 3, 0 // net unreachable
	default:
		return 1, 0 // no route to destination
	}
}

// buildICMPError writes into buf an ICMP error from src to the sender of pkt,
// quoting as much of pkt as the limits allow; a too-big error names mtu (the
// next-hop MTU of RFC 1191, the MTU of RFC 4443 3.2). It returns nil if buf
// is too small.
func buildICMPError(buf []byte, reason Reason, src netip.Addr, pkt []byte, h header, mtu int) []byte {
	typ, code := icmpType(reason, h.v6)
	if !h.v6 {
		n := min(len(pkt), maxICMP4-28)
		total := 28 + n
		if len(buf) < total {
			return nil
		}
		out := buf[:total]
		clear(out[:28])
		out[0] = 0x45
		binary.BigEndian.PutUint16(out[2:4], uint16(total))
		out[8] = 64 // TTL
		out[9] = 1  // ICMP
		s4 := src.As4()
		copy(out[12:16], s4[:])
		copy(out[16:20], pkt[12:16])
		binary.BigEndian.PutUint16(out[10:12], ^checksum.Fold(checksum.Sum(out[:20], 0)))
		out[20], out[21] = typ, code
		if reason == ReasonTooBig {
			binary.BigEndian.PutUint16(out[26:28], uint16(mtu))
		}
		copy(out[28:], pkt[:n])
		binary.BigEndian.PutUint16(out[22:24], ^checksum.Fold(checksum.Sum(out[20:], 0)))
		return out
	}
	n := min(len(pkt), maxICMP6-48)
	total := 48 + n
	if len(buf) < total {
		return nil
	}
	out := buf[:total]
	clear(out[:48])
	out[0] = 0x60
	binary.BigEndian.PutUint16(out[4:6], uint16(8+n))
	out[6] = 58 // ICMPv6
	out[7] = 64 // hop limit
	s16 := src.As16()
	copy(out[8:24], s16[:])
	copy(out[24:40], pkt[8:24])
	out[40], out[41] = typ, code
	if reason == ReasonTooBig {
		binary.BigEndian.PutUint32(out[44:48], uint32(mtu))
	}
	copy(out[48:], pkt[:n])
	// Pseudo-header: addresses, upper-layer length, next header.
	acc := checksum.Sum(out[8:40], 0)
	acc += uint32(8 + n)
	acc += 58
	binary.BigEndian.PutUint16(out[42:44], ^checksum.Fold(checksum.Sum(out[40:], acc)))
	return out
}
