package tun

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	wgtun "golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// Netstack is a userspace TUN: a gVisor network stack (through
// wireguard-go's tun/netstack) that holds the device's overlay address, so
// that a process without privileges dials and listens on the overlay
// without a kernel interface, routes or capabilities. Device is what the
// WireGuard device reads and writes; the dial and listen methods are the
// stack's sockets.
type Netstack struct {
	dev  wgtun.Device
	net  *netstack.Net
	addr netip.Addr
}

// NewNetstack creates a userspace stack with the address addr and the MTU
// mtu. It has no resolver: callers pass addresses, not names.
func NewNetstack(addr netip.Addr, mtu int) (*Netstack, error) {
	dev, n, err := netstack.CreateNetTUN([]netip.Addr{addr}, nil, mtu)
	if err != nil {
		return nil, fmt.Errorf("create netstack %s (mtu %d): %w", addr, mtu, err)
	}
	return &Netstack{dev: dev, net: n, addr: addr}, nil
}

// Device is the stack's packet side. Whoever owns it closes it, which ends
// the stack.
func (s *Netstack) Device() wgtun.Device { return s.dev }

// Addr is the stack's address.
func (s *Netstack) Addr() netip.Addr { return s.addr }

// DialTCP opens a TCP connection from the stack's address to dst.
func (s *Netstack) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	c, err := s.net.DialContextTCPAddrPort(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("netstack dial tcp %s: %w", dst, err)
	}
	return c, nil
}

// ListenTCP listens on port of the stack's address.
func (s *Netstack) ListenTCP(port uint16) (net.Listener, error) {
	ap := netip.AddrPortFrom(s.addr, port)
	l, err := s.net.ListenTCPAddrPort(ap)
	if err != nil {
		return nil, fmt.Errorf("netstack listen tcp %s: %w", ap, err)
	}
	return l, nil
}

// ListenUDP opens an unconnected UDP socket on port (0: any) of the stack's
// address, for ReadFrom and WriteTo with any peer.
func (s *Netstack) ListenUDP(port uint16) (net.PacketConn, error) {
	ap := netip.AddrPortFrom(s.addr, port)
	c, err := s.net.ListenUDPAddrPort(ap)
	if err != nil {
		return nil, fmt.Errorf("netstack listen udp %s: %w", ap, err)
	}
	return c, nil
}
