package router

import (
	"encoding/binary"
	"net/netip"

	"github.com/switchyard/switchyard/internal/checksum"
)

// Fragment writes into dst the IPv4 fragment of pkt (RFC 791 3.2) whose data
// starts at byte off of pkt's payload, at most mtu bytes in all, and returns
// its length and the offset of the next fragment's data, 0 after the last.
// Walk a packet with off = 0, then each next until it is 0. The first
// fragment carries pkt's whole header, the others only the options whose
// copied flag is set; every fragment but the last carries a multiple of 8
// bytes of data and More Fragments. pkt may itself be a fragment: offsets
// add to its own and the last fragment keeps its More Fragments flag. dst
// needs mtu bytes; pkt must be a valid IPv4 packet (as Route's
// ForwardFragments verdict gives) and mtu at least its header length plus 8,
// or Fragment returns 0, 0. It does not allocate.
func Fragment(dst, pkt []byte, mtu, off int) (n, next int) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return 0, 0
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if ihl < 20 || total < ihl || total > len(pkt) || len(dst) < mtu || off < 0 || off >= total-ihl {
		return 0, 0
	}
	payload := pkt[ihl:total]
	hlen := ihl
	if off == 0 {
		copy(dst, pkt[:ihl])
	} else {
		copy(dst, pkt[:20])
		hlen = 20 + copiedOptions(dst[20:], pkt[20:ihl])
	}
	room := (mtu - hlen) &^ 7
	if room <= 0 {
		return 0, 0
	}
	data := min(len(payload)-off, room)
	last := off+data == len(payload)
	copy(dst[hlen:], payload[off:off+data])

	field := binary.BigEndian.Uint16(pkt[6:8])
	fo := int(field&0x1fff)*8 + off
	flags := field & 0xe000 // DF (clear, or Route would not fragment) and MF
	if !last {
		flags |= 0x2000
	}
	n = hlen + data
	dst[0] = 0x40 | byte(hlen/4)
	binary.BigEndian.PutUint16(dst[2:4], uint16(n))
	binary.BigEndian.PutUint16(dst[6:8], flags|uint16(fo/8))
	dst[10], dst[11] = 0, 0
	binary.BigEndian.PutUint16(dst[10:12], ^checksum.Fold(checksum.Sum(dst[:hlen], 0)))
	if last {
		return n, 0
	}
	return n, off + data
}

// copiedOptions writes into dst the IPv4 options of opts whose copied flag
// is set (those every fragment repeats), padded with End of Option List to a
// multiple of 4 bytes, and returns their length. A malformed option ends the
// list.
func copiedOptions(dst, opts []byte) int {
	n := 0
	for i := 0; i < len(opts); {
		typ := opts[i]
		if typ == 0 { // end of option list
			break
		}
		if typ == 1 { // no operation
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			break
		}
		l := int(opts[i+1])
		if typ&0x80 != 0 {
			n += copy(dst[n:], opts[i:i+l])
		}
		i += l
	}
	for n%4 != 0 {
		dst[n] = 0
		n++
	}
	return n
}

// FragNeeded writes into buf (at least IcmpBufSize bytes) the ICMPv4
// Fragmentation Needed error that answers pkt, an IPv4 packet with DF
// larger than mtu, from src, and returns it; nil if pkt is not such a
// packet or may not be answered (an ICMP error, a fragment). An agent uses
// it where its TUN's MTU cannot go as low as its IPv4 path MTU (it stays
// at 1280 for IPv6).
func FragNeeded(buf []byte, src netip.Addr, pkt []byte, mtu int) []byte {
	h, ok := parse(pkt)
	if !ok || h.v6 || h.length <= mtu || !dontFragment(pkt) || !mayAnswer(pkt[:h.length], h) {
		return nil
	}
	return buildICMPError(buf, ReasonTooBig, src, pkt[:h.length], h, mtu)
}
