package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
)

// maxDatagram is the largest UDP payload a relay carries.
const maxDatagram = 65535

// socksUDP serves a UDP ASSOCIATE: a relay socket on the host, at the
// address the client reached the server on, for the client's datagrams
// (from the client's address alone); each goes on the path of its
// destination, and replies come back with a header naming their source.
// The association lasts as long as the TCP connection c.
func (s *Server) socksUDP(ctx context.Context, c net.Conn) {
	local := addrPortOf(c.LocalAddr())
	relay, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local.Addr(), 0)))
	if err != nil {
		reply(c, repGeneralFailure, netip.AddrPort{})
		return
	}
	if err := reply(c, repSucceeded, relay.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		relay.Close()
		return
	}
	a := &association{s: s, relay: relay, clientIP: addrPortOf(c.RemoteAddr()).Addr().Unmap(), paths: map[Network]net.PacketConn{}}
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.fromClient(ctx) }()
	io.Copy(io.Discard, c) // until the client closes the TCP connection
	a.close()
}

// association is one UDP ASSOCIATE.
type association struct {
	s        *Server
	relay    *net.UDPConn
	clientIP netip.Addr

	mu     sync.Mutex
	client netip.AddrPort             // the client's UDP address, from its first datagram
	paths  map[Network]net.PacketConn // a socket per path, opened on first use
	closed bool
	wg     sync.WaitGroup
}

// fromClient relays the client's datagrams until the relay socket closes.
func (a *association) fromClient(ctx context.Context) {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := a.relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if from.Addr().Unmap() != a.clientIP {
			continue // RFC 1928: only the client that asked may use the relay
		}
		a.mu.Lock()
		if !a.client.IsValid() {
			a.client = from
		}
		ok := a.client == from
		a.mu.Unlock()
		if !ok || n < 4 || buf[2] != 0 { // RSV RSV FRAG: no fragments
			continue
		}
		r := bytes.NewReader(buf[3:n])
		host, port, err := readAddr(r)
		if err != nil {
			continue
		}
		dst, err := a.s.resolve(ctx, host)
		if err != nil {
			continue
		}
		pc := a.path(a.s.Router.Route(dst))
		if pc == nil {
			continue
		}
		payload := buf[n-r.Len() : n]
		pc.WriteTo(payload, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)))
	}
}

// path returns the socket of network n, opening it (and its reader) on first use.
func (a *association) path(n Network) net.PacketConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	if pc, ok := a.paths[n]; ok {
		return pc
	}
	pc, err := n.ListenUDP()
	if err != nil {
		a.s.log().Debug("socks5 udp", "err", err)
		return nil
	}
	a.paths[n] = pc
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.toClient(pc) }()
	return pc
}

// toClient relays the replies that arrive on pc until it closes.
func (a *association) toClient(pc net.PacketConn) {
	buf := make([]byte, maxDatagram)
	out := make([]byte, 0, maxDatagram+22)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		a.mu.Lock()
		client := a.client
		a.mu.Unlock()
		out = appendAddr(append(out[:0], 0, 0, 0), addrPortOf(from))
		out = append(out, buf[:n]...)
		a.relay.WriteToUDPAddrPort(out, client)
	}
}

// close ends the association and waits for its goroutines.
func (a *association) close() {
	a.mu.Lock()
	a.closed = true
	for _, pc := range a.paths {
		pc.Close()
	}
	a.mu.Unlock()
	a.relay.Close()
	a.wg.Wait()
}
