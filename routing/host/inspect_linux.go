//go:build linux

package host

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var _ Inspector = (*NetlinkOps)(nil)

// Routes implements Inspector.
func (o *NetlinkOps) Routes() ([]HostRoute, error) {
	names, err := o.linkNames()
	if err != nil {
		return nil, err
	}
	filter := &netlink.Route{Table: unix.RT_TABLE_UNSPEC}
	nrs, err := o.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	out := make([]HostRoute, 0, len(nrs))
	for _, nr := range nrs {
		if nr.Type != unix.RTN_UNICAST || nr.Table == unix.RT_TABLE_LOCAL {
			continue
		}
		var dst netip.Prefix
		if nr.Dst == nil {
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if nr.Family == unix.AF_INET6 {
				dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
		} else {
			addr, ok := netip.AddrFromSlice(nr.Dst.IP)
			if !ok {
				continue
			}
			ones, _ := nr.Dst.Mask.Size()
			if nr.Dst.IP.To4() != nil {
				addr = addr.Unmap()
			}
			dst = netip.PrefixFrom(addr, ones).Masked()
		}
		table := nr.Table
		if table == unix.RT_TABLE_MAIN {
			table = 0
		}
		out = append(out, HostRoute{Dst: dst, Dev: names[nr.LinkIndex], Table: table, Protocol: int(nr.Protocol)})
	}
	return out, nil
}

// Addrs implements Inspector.
func (o *NetlinkOps) Addrs() ([]HostAddr, error) {
	links, err := o.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []HostAddr
	for _, l := range links {
		addrs, err := o.h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
		}
		for _, a := range addrs {
			if a.Scope != int(netlink.SCOPE_UNIVERSE) || a.IPNet == nil {
				continue
			}
			ip, ok := netip.AddrFromSlice(a.IPNet.IP)
			if !ok {
				continue
			}
			ones, _ := a.IPNet.Mask.Size()
			out = append(out, HostAddr{Prefix: netip.PrefixFrom(ip.Unmap(), ones), Dev: l.Attrs().Name})
		}
	}
	return out, nil
}

// linkNames maps interface indexes to names.
func (o *NetlinkOps) linkNames() (map[int]string, error) {
	links, err := o.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	return names, nil
}

var _ MTUInspector = (*NetlinkOps)(nil)

// LinkMTU implements MTUInspector.
func (o *NetlinkOps) LinkMTU(name string) (int, error) {
	link, err := o.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0, fmt.Errorf("link %s: %w", name, ErrLinkNotFound)
		}
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	return link.Attrs().MTU, nil
}
