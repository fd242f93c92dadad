package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// OverlayDialer is the kernel mode's tunnel Dialer: its sockets' source is
// src, the device's overlay address, so that a site's DNS server sees the
// device as the querier, and the host's routes (Config.TunnelRoutes) carry
// them into the TUN.
func OverlayDialer(src netip.Addr) Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{}
		switch network {
		case "udp", "udp4", "udp6":
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		default:
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		}
		return d.DialContext(ctx, network, addr)
	}
}

// NetstackDialer is the userspace mode's tunnel Dialer, over the stack's
// sockets: listenUDP opens an unconnected UDP socket (tun.Netstack's
// ListenUDP(0)) and dialTCP a TCP connection (tun.Netstack's DialTCP).
func NetstackDialer(listenUDP func() (net.PacketConn, error), dialTCP func(context.Context, netip.AddrPort) (net.Conn, error)) Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		dst, err := netip.ParseAddrPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s %s: %w", network, addr, err)
		}
		if network != "udp" {
			return dialTCP(ctx, dst)
		}
		pc, err := listenUDP()
		if err != nil {
			return nil, err
		}
		return &peerConn{PacketConn: pc, peer: net.UDPAddrFromAddrPort(dst)}, nil
	}
}

// peerConn is an unconnected UDP socket used as one connected to peer: it
// writes to peer and reads only what peer sends. It stays a
// net.PacketConn, so that DNS messages keep their datagram framing.
type peerConn struct {
	net.PacketConn
	peer *net.UDPAddr
}

var _ net.Conn = (*peerConn)(nil)

// Read implements net.Conn, dropping datagrams from anyone but the peer.
func (c *peerConn) Read(b []byte) (int, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, err
		}
		if u, ok := from.(*net.UDPAddr); ok && u.AddrPort() == c.peer.AddrPort() {
			return n, nil
		}
	}
}

// Write implements net.Conn.
func (c *peerConn) Write(b []byte) (int, error) { return c.PacketConn.WriteTo(b, c.peer) }

// RemoteAddr implements net.Conn.
func (c *peerConn) RemoteAddr() net.Addr { return c.peer }
