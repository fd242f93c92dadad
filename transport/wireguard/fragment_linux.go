package wireguard

import (
	"fmt"
	"sync"
	"syscall"
	_ "unsafe" // go:linkname

	"golang.org/x/sys/unix"
)

// Outer fragmentation (issue 21, item 3). Linux sends a UDP datagram with
// DF set (IP_PMTUDISC_WANT) unless it is a GSO batch, so behind an underlay
// hop smaller than the outer packets (inner MTU 1420 + 60 bytes) that drops
// them without an ICMP error, single sends vanish: a black hole. With
// IP_PMTUDISC_DONT the outer IPv4 datagram goes out without DF and the
// small hop fragments it. The trade-off: on such a path each big packet
// costs two fragments (more packets, reassembly at the peer, a lost
// fragment loses the packet), which is slower than a right-sized inner MTU
// (path MTU discovery, issue 21, item 2) but carries every packet instead
// of none. IPv6 routers never fragment: IPV6_PMTUDISC_DONT only lets this
// host fragment at the source, to a path MTU it has learnt from a Packet
// Too Big, so a silent IPv6 hop still needs item 2.

// wgControlFns is wireguard-go's conn.controlFns, the socket options its
// StdNetBind applies before bind: it has no exported hook, so it is linked
// by name (a rename upstream fails the build, not silently).
//
//go:linkname wgControlFns golang.zx2c4.com/wireguard/conn.controlFns
var wgControlFns []func(network, address string, c syscall.RawConn) error

var fragmentOnce sync.Once

// FragmentOuter makes every WireGuard UDP socket opened afterwards by
// wireguard-go's StdNetBind in this process let its datagrams fragment
// (IP_PMTUDISC_DONT, IPV6_PMTUDISC_DONT); AddrBind always does.
func FragmentOuter() {
	fragmentOnce.Do(func() { wgControlFns = append(wgControlFns, fragmentControl, captureControl) })
}

// outerControl is AddrBind's listen control: fragmentControl, and the
// socket recorded for a ProbeBind (probebind.go).
func outerControl(network, address string, c syscall.RawConn) error {
	if err := fragmentControl(network, address, c); err != nil {
		return err
	}
	return captureControl(network, address, c)
}

// setProbeDF switches the socket between IP_PMTUDISC_PROBE (DF set, for one
// probe) and IP_PMTUDISC_DONT (data).
func setProbeDF(rc syscall.RawConn, is6, on bool) error {
	var err error
	cerr := rc.Control(func(fd uintptr) {
		if is6 {
			mode := unix.IPV6_PMTUDISC_DONT
			if on {
				mode = unix.IPV6_PMTUDISC_PROBE
			}
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, mode)
			return
		}
		mode := unix.IP_PMTUDISC_DONT
		if on {
			mode = unix.IP_PMTUDISC_PROBE
		}
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, mode)
	})
	if cerr != nil {
		return fmt.Errorf("set probe df: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("set probe df: %w", err)
	}
	return nil
}

// socketPort returns the local port of a socket and whether it is IPv6.
func socketPort(rc syscall.RawConn) (port uint16, is6, ok bool) {
	rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			return
		}
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			port, ok = uint16(a.Port), true
		case *unix.SockaddrInet6:
			port, is6, ok = uint16(a.Port), true, true
		}
	})
	return port, is6, ok
}

// fragmentControl is a net.ListenConfig.Control that lets the socket's
// datagrams fragment.
func fragmentControl(network, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) { err = setFragment(int(fd), network == "udp6") }); cerr != nil {
		return cerr
	}
	return err
}

// setFragment sets IP_PMTUDISC_DONT (and IPV6_PMTUDISC_DONT on an IPv6
// socket) on fd.
func setFragment(fd int, is6 bool) error {
	if is6 {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT)
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
}
