//go:build linux

package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetlinkOps are the production Ops: rtnetlink through a netlink.Handle and
// sysctls through /proc/sys, both in one network namespace.
type NetlinkOps struct {
	h  *netlink.Handle
	ns netns.NsHandle // closed (netns.None()) means the caller's namespace
}

var _ Ops = (*NetlinkOps)(nil)

// NewNetlinkOps returns Ops acting in the network namespace ns, or in the
// calling process's namespace when ns is netns.None(). The caller keeps
// ownership of ns and must keep it open until Close. Sysctls in another
// namespace are read and written by a goroutine locked to a thread that
// enters ns for the duration of the call (setns needs CAP_SYS_ADMIN).
func NewNetlinkOps(ns netns.NsHandle) (*NetlinkOps, error) {
	var h *netlink.Handle
	var err error
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink handle in %s: %w", ns, err)
	}
	return &NetlinkOps{h: h, ns: ns}, nil
}

// Close releases the netlink handle; it does not close the namespace.
func (o *NetlinkOps) Close() error {
	o.h.Close()
	return nil
}

// LinkIndex implements RouteOps.
func (o *NetlinkOps) LinkIndex(name string) (int, error) {
	link, err := o.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0, fmt.Errorf("link %s: %w", name, ErrLinkNotFound)
		}
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	return link.Attrs().Index, nil
}

// nlRoute converts r to a device route carrying RouteProtocol.
func nlRoute(r Route) *netlink.Route {
	nr := &netlink.Route{
		LinkIndex: r.Link,
		Dst:       prefixIPNet(r.Dst),
		Table:     r.Table,
		Protocol:  RouteProtocol,
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if r.Dst.Addr().Is4() {
		nr.Scope = netlink.SCOPE_LINK // as `ip route add P dev D` does
	}
	if r.Src.IsValid() {
		nr.Src = net.IP(r.Src.AsSlice())
	}
	return nr
}

// prefixIPNet converts p to a *net.IPNet of the right length.
func prefixIPNet(p netip.Prefix) *net.IPNet {
	addr := p.Addr()
	bits := 128
	if addr.Is4() {
		bits = 32
	}
	return &net.IPNet{IP: net.IP(addr.AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

// RouteReplace implements RouteOps.
func (o *NetlinkOps) RouteReplace(r Route) error {
	if err := o.h.RouteReplace(nlRoute(r)); err != nil {
		return fmt.Errorf("replace route %s: %w", r, err)
	}
	return nil
}

// RouteDel implements RouteOps. The kernel only deletes a route whose
// protocol and output interface match, so a route someone replaced since
// is left alone.
func (o *NetlinkOps) RouteDel(r Route) error {
	err := o.h.RouteDel(nlRoute(r))
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV) {
		return nil // already gone, or gone with its link
	}
	if err != nil {
		return fmt.Errorf("delete route %s: %w", r, err)
	}
	return nil
}

// RouteList implements RouteOps.
func (o *NetlinkOps) RouteList(link int) ([]Route, error) {
	filter := &netlink.Route{LinkIndex: link, Protocol: RouteProtocol, Table: unix.RT_TABLE_UNSPEC}
	nrs, err := o.h.RouteListFiltered(netlink.FAMILY_ALL, filter,
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes dev %d proto %d: %w", link, RouteProtocol, err)
	}
	routes := make([]Route, 0, len(nrs))
	for _, nr := range nrs {
		if nr.Dst == nil {
			continue
		}
		addr, ok := netip.AddrFromSlice(nr.Dst.IP)
		if !ok {
			continue
		}
		if nr.Dst.IP.To4() != nil {
			addr = addr.Unmap()
		}
		ones, _ := nr.Dst.Mask.Size()
		table := nr.Table
		if table == unix.RT_TABLE_MAIN {
			table = 0
		}
		var src netip.Addr
		if a, ok := netip.AddrFromSlice(nr.Src); ok {
			src = a.Unmap()
		}
		routes = append(routes, Route{Dst: netip.PrefixFrom(addr, ones), Link: nr.LinkIndex, Table: table, Src: src})
	}
	return routes, nil
}

// GetSysctl implements SysctlOps.
func (o *NetlinkOps) GetSysctl(key string) (string, error) {
	var value string
	err := o.inNetns(func() error {
		b, err := os.ReadFile(sysctlPath(key))
		value = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return value, nil
}

// SetSysctl implements SysctlOps.
func (o *NetlinkOps) SetSysctl(key, value string) error {
	err := o.inNetns(func() error {
		return os.WriteFile(sysctlPath(key), []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// sysctlPath returns the /proc/sys file of key; keys never hold "..".
func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", filepath.Clean("/"+key))
}

// inNetns runs f in o's namespace. /proc/sys/net shows the namespace of the
// thread that opens the file, so f runs on a fresh goroutine locked to its
// thread; if the thread cannot return to its namespace the goroutine exits
// still locked and the runtime discards the thread.
func (o *NetlinkOps) inNetns(f func() error) error {
	if !o.ns.IsOpen() {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(o.ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", o.ns, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to netns %s: %w", orig, err))
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Addresses returns the global-scope addresses, with their prefix lengths,
// of every interface but except.
func (o *NetlinkOps) Addresses(except string) ([]netip.Prefix, error) {
	all, err := o.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range all {
		if a.Dev != except {
			out = append(out, a.Prefix)
		}
	}
	return out, nil
}
