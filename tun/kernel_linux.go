//go:build linux

package tun

import (
	"fmt"

	"github.com/vishvananda/netlink"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

// in6AddrGenModeNone is IN6_ADDR_GEN_MODE_NONE from linux/if_link.h.
const in6AddrGenModeNone = 1

// CreateKernel creates (or attaches to) the kernel TUN interface name in the
// calling thread's network namespace, sets its MTU, turns off its IPv6
// link-local address and brings it up. wireguard-go asks for
// IFF_VNET_HDR and enables TCP segmentation offload (and UDP offload on
// Linux 6.2+), so Read may return many segments per call: size read vectors
// by the device's BatchSize, and use an offset of at least 10 bytes (the
// virtio-net header is written in front of each packet; wireguard-go's
// device uses 16).
func CreateKernel(name string, mtu int) (wgtun.Device, error) {
	dev, err := wgtun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("create tun %s (mtu %d): %w", name, mtu, err)
	}
	link, err := netlink.LinkByName(name)
	if err == nil {
		// No IPv6 link-local address: the tunnel is point-to-point and the
		// edge has no use for neighbor discovery or MLD chatter.
		if err = netlink.LinkSetIP6AddrGenMode(link, in6AddrGenModeNone); err != nil {
			err = fmt.Errorf("disable IPv6 link-local address: %w", err)
		}
	}
	if err == nil {
		err = netlink.LinkSetUp(link)
	}
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("bring tun %s up: %w", name, err)
	}
	return dev, nil
}
