//go:build linux

package tun

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// AddAddress assigns p (e.g. a client's overlay address as a /32) to the
// interface name. The address goes away with the interface.
func AddAddress(name string, p netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("add address %s to %s: %w", p, name, err)
	}
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("add address %s to %s: %w", p, name, err)
	}
	return nil
}

// SetLinkMTU sets the MTU of the interface name (path MTU discovery
// changes a TUN's while flows run over it).
func SetLinkMTU(name string, mtu int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("set mtu %d of %s: %w", mtu, name, err)
	}
	if link.Attrs().MTU == mtu {
		return nil
	}
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("set mtu %d of %s: %w", mtu, name, err)
	}
	return nil
}
