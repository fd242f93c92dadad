package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	wgtun "golang.zx2c4.com/wireguard/tun"
)

// Header overheads subtracted from the tunnel MTU to get the largest MSS:
// the IP header plus a TCP header without options.
const (
	mssOverhead4 = 20 + 20
	mssOverhead6 = 40 + 20
)

// MinMTU and MaxMTU bound the MTU accepted by NewMSSClamp and SetMTU.
const (
	MinMTU = 576
	MaxMTU = 65535
)

// ErrInvalidMTU is returned for an MTU outside [MinMTU, MaxMTU].
var ErrInvalidMTU = errors.New("invalid mtu")

// MSSClamp is a tun.Device that rewrites the TCP MSS option of every IPv4
// and IPv6 SYN and SYN-ACK crossing it, in both directions, down to what fits
// the tunnel MTU (MTU-40 for IPv4, MTU-60 for IPv6), and fixes the TCP
// checksum incrementally (RFC 1624). It never raises an MSS and leaves
// fragments, non-TCP, non-SYN and malformed packets untouched. IPv6
// hop-by-hop, routing and destination-options headers are walked; any other
// extension header (fragment, AH, ESP) leaves the packet untouched.
//
// Read clamps the packets the inner device returned; Write clamps the
// caller's packets in place before passing them on. All other methods are
// the inner device's. Clamping allocates nothing.
type MSSClamp struct {
	wgtun.Device

	mss4, mss6 atomic.Uint32
	read       atomic.Uint64
	written    atomic.Uint64
}

var _ wgtun.Device = (*MSSClamp)(nil)

// ClampStats counts the packets whose MSS an MSSClamp lowered.
type ClampStats struct {
	Read    uint64 // packets from the inner device (host to tunnel)
	Written uint64 // packets written to the inner device (tunnel to host)
}

// NewMSSClamp wraps dev so that TCP handshakes crossing it agree on segments
// that fit a tunnel of the given MTU.
func NewMSSClamp(dev wgtun.Device, mtu int) (*MSSClamp, error) {
	c := &MSSClamp{Device: dev}
	if err := c.SetMTU(mtu); err != nil {
		return nil, err
	}
	return c, nil
}

// SetMTU changes the tunnel MTU that later packets are clamped to; it is
// safe to call concurrently with Read and Write.
func (c *MSSClamp) SetMTU(mtu int) error {
	if mtu < MinMTU || mtu > MaxMTU {
		return fmt.Errorf("set mss clamp mtu %d: %w", mtu, ErrInvalidMTU)
	}
	c.mss4.Store(uint32(mtu - mssOverhead4))
	c.mss6.Store(uint32(mtu - mssOverhead6))
	return nil
}

// Stats returns the number of packets clamped so far in each direction.
func (c *MSSClamp) Stats() ClampStats {
	return ClampStats{Read: c.read.Load(), Written: c.written.Load()}
}

// Read reads a batch from the inner device and clamps each packet in it.
func (c *MSSClamp) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := c.Device.Read(bufs, sizes, offset)
	if n > 0 {
		mss4, mss6 := uint16(c.mss4.Load()), uint16(c.mss6.Load())
		var clamped uint64
		for i := range n {
			if ClampMSS(bufs[i][offset:offset+sizes[i]], mss4, mss6) {
				clamped++
			}
		}
		if clamped > 0 {
			c.read.Add(clamped)
		}
	}
	return n, err
}

// Write clamps each packet of the batch in place, then writes the batch to
// the inner device.
func (c *MSSClamp) Write(bufs [][]byte, offset int) (int, error) {
	mss4, mss6 := uint16(c.mss4.Load()), uint16(c.mss6.Load())
	var clamped uint64
	for _, b := range bufs {
		if offset < len(b) && ClampMSS(b[offset:], mss4, mss6) {
			clamped++
		}
	}
	if clamped > 0 {
		c.written.Add(clamped)
	}
	return c.Device.Write(bufs, offset)
}

// IP protocol numbers and IPv6 extension headers the clamp knows.
const (
	protoTCP       = 6
	ext6HopByHop   = 0
	ext6Routing    = 43
	ext6DestOpts   = 60
	maxExtHeaders6 = 8

	tcpFlagSYN = 0x02
	tcpOptEOL  = 0
	tcpOptNOP  = 1
	tcpOptMSS  = 2
)

// ClampMSS lowers the MSS option of pkt, an IPv4 or IPv6 packet starting at
// pkt[0], to mss4 or mss6 if pkt is an unfragmented TCP SYN (or SYN-ACK)
// carrying a larger one, fixing the TCP checksum incrementally. It reports
// whether it changed pkt. Only the two MSS bytes and the two checksum bytes
// can change; everything is bounds-checked, so any input is safe.
func ClampMSS(pkt []byte, mss4, mss6 uint16) bool {
	if len(pkt) == 0 {
		return false
	}
	var tcp []byte
	var limit uint16
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return false
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if ihl < 20 || total < ihl || total > len(pkt) {
			return false
		}
		// More-fragments flag or a non-zero fragment offset.
		if pkt[9] != protoTCP || binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
			return false
		}
		tcp, limit = pkt[ihl:total], mss4
	case 6:
		if len(pkt) < 40 {
			return false
		}
		end := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if end > len(pkt) {
			return false
		}
		next, off := pkt[6], 40
		for range maxExtHeaders6 {
			if next != ext6HopByHop && next != ext6Routing && next != ext6DestOpts {
				break
			}
			if off+8 > end {
				return false
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
		}
		if next != protoTCP || off > end {
			return false
		}
		tcp, limit = pkt[off:end], mss6
	default:
		return false
	}
	if len(tcp) < 20 || tcp[13]&tcpFlagSYN == 0 {
		return false
	}
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || doff > len(tcp) {
		return false
	}
	for i := 20; i < doff; {
		switch tcp[i] {
		case tcpOptEOL:
			return false
		case tcpOptNOP:
			i++
			continue
		}
		if i+1 >= doff {
			return false
		}
		olen := int(tcp[i+1])
		if olen < 2 || i+olen > doff {
			return false
		}
		if tcp[i] != tcpOptMSS {
			i += olen
			continue
		}
		if olen != 4 {
			return false
		}
		old := binary.BigEndian.Uint16(tcp[i+2:])
		if old <= limit {
			return false
		}
		binary.BigEndian.PutUint16(tcp[i+2:], limit)
		// The checksum sums 16-bit words from the start of the TCP header
		// (which starts word-aligned); a field at an odd offset straddles
		// two words and counts byte-swapped.
		o, n := old, limit
		if (i+2)%2 == 1 {
			o, n = o<<8|o>>8, n<<8|n>>8
		}
		sum := binary.BigEndian.Uint16(tcp[16:18])
		binary.BigEndian.PutUint16(tcp[16:18], checksumUpdate(sum, o, n))
		return true
	}
	return false
}

// checksumUpdate returns the Internet checksum sum after a 16-bit word of
// the covered data changed from old to new: HC' = ~(~HC + ~m + m'), RFC 1624
// equation 3.
func checksumUpdate(sum, old, new uint16) uint16 {
	s := uint32(^sum) + uint32(^old) + uint32(new)
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return ^uint16(s)
}
