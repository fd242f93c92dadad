// Package checksum computes the Internet checksum (RFC 1071) that IPv4, ICMP,
// TCP and UDP headers carry.
package checksum

import "encoding/binary"

// Sum adds b as big-endian 16-bit words to acc, an odd last byte padded
// with zero.
func Sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// Fold reduces a 32-bit sum to 16 bits with end-around carry; the checksum
// field is its complement, and a valid header folds to 0xffff.
func Fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = (acc & 0xffff) + (acc >> 16)
	}
	return uint16(acc)
}
