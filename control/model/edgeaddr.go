package model

import (
	"encoding/binary"
	"net/netip"
)

// MaxEdges bounds the edges of a cluster: each claims an index below it
// (control/cluster.EdgeIndex), and with it addresses of its own.
const MaxEdges = 64

// EdgeOwnAddress is the IPv4 address of the cluster's edge with index i in
// an IPv4 overlay range: counted down from the range's last address but one
// (the last is the broadcast address), so that devices, which get the
// lowest free addresses, never meet it; the device allocator skips the whole
// block (EdgeReserved). Invalid when i is out of range or the overlay range
// is not IPv4 or too small to spare MaxEdges addresses.
func EdgeOwnAddress(overlay netip.Prefix, i int) netip.Addr {
	if i < 0 || i >= MaxEdges || !overlay.Addr().Is4() || overlay.Bits() > 32-8 {
		return netip.Addr{}
	}
	a4 := overlay.Masked().Addr().As4()
	last := binary.BigEndian.Uint32(a4[:]) | (1<<(32-overlay.Bits()) - 1)
	binary.BigEndian.PutUint32(a4[:], last-1-uint32(i))
	return netip.AddrFrom4(a4)
}

// EdgeOwnAddress6 is the IPv6 address of the cluster's edge with index i,
// in EdgeBlock6 after EdgeAddress6; invalid when i is out of range.
func EdgeOwnAddress6(i int) netip.Addr {
	if i < 0 || i >= MaxEdges {
		return netip.Addr{}
	}
	a := EdgeAddress6.As16()
	a[15] += byte(1 + i)
	return netip.AddrFrom16(a)
}

// EdgeReserved reports whether a is one of the addresses an overlay range
// keeps for the edges of a cluster (EdgeOwnAddress), which no device gets.
func EdgeReserved(overlay netip.Prefix, a netip.Addr) bool {
	first := EdgeOwnAddress(overlay, MaxEdges-1)
	if !first.IsValid() || !a.Is4() {
		return false
	}
	return a.Compare(first) >= 0 && a.Compare(EdgeOwnAddress(overlay, 0)) <= 0
}
