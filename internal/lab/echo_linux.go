package lab

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// Echo is a TCP and UDP server that answers every connection and datagram with "peer=<ip:port>\n", the source address it saw.
type Echo struct {
	ns   *NS
	addr netip.AddrPort
	tcp  *net.TCPListener
	udp  *net.UDPConn
	wg   sync.WaitGroup

	mu    sync.Mutex
	peers []netip.AddrPort

	closeOnce sync.Once
	closeErr  error
}

// Echo starts an echo server on the IP:port addr (port 0 picks one for both protocols) inside the namespace, closed in t.Cleanup and at Lab teardown.
func (n *NS) Echo(t testing.TB, addr string) *Echo {
	t.Helper()
	e, err := n.startEcho(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

func (n *NS) startEcho(addr string) (*Echo, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("lab: echo server in netns %s: %w", n.name, err)
	}
	fam := "4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		fam = "6"
	}
	ln, err := n.listen("tcp"+fam, addr)
	if err != nil {
		return nil, err
	}
	tcp := ln.(*net.TCPListener)
	bound := tcp.Addr().(*net.TCPAddr).AddrPort()
	pc, err := n.listenPacket("udp"+fam, netip.AddrPortFrom(ap.Addr(), bound.Port()).String())
	if err != nil {
		tcp.Close()
		return nil, err
	}
	e := &Echo{ns: n, addr: netip.AddrPortFrom(ap.Addr(), bound.Port()), tcp: tcp, udp: pc.(*net.UDPConn)}
	e.wg.Add(2)
	go e.serveTCP()
	go e.serveUDP()
	if !n.lab.track(e) {
		e.Close()
		return nil, fmt.Errorf("lab: echo server %s in netns %s: lab already cleaned up", addr, n.name)
	}
	return e, nil
}

// Addr returns the address both servers listen on.
func (e *Echo) Addr() netip.AddrPort { return e.addr }

// Peers returns the source addresses seen so far, TCP and UDP, in arrival order.
func (e *Echo) Peers() []netip.AddrPort {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]netip.AddrPort(nil), e.peers...)
}

// record appends p, with IPv4-mapped IPv6 addresses unmapped, and returns it.
func (e *Echo) record(p netip.AddrPort) netip.AddrPort {
	p = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
	e.mu.Lock()
	e.peers = append(e.peers, p)
	e.mu.Unlock()
	return p
}

func (e *Echo) serveTCP() {
	defer e.wg.Done()
	for {
		c, err := e.tcp.AcceptTCP()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE; retry until closed
			continue
		}
		peer := e.record(c.RemoteAddr().(*net.TCPAddr).AddrPort())
		// A fresh socket's send buffer takes the line at once; the deadline only bounds a broken peer.
		c.SetWriteDeadline(time.Now().Add(EchoTimeout))
		fmt.Fprintf(c, "peer=%s\n", peer)
		c.Close()
	}
}

func (e *Echo) serveUDP() {
	defer e.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		_, peer, err := e.udp.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond) // transient; retry until closed
			continue
		}
		reply := fmt.Appendf(nil, "peer=%s\n", e.record(peer))
		e.udp.WriteToUDPAddrPort(reply, peer)
	}
}

// Close stops both servers and waits for their goroutines.
func (e *Echo) Close() error {
	e.closeOnce.Do(func() {
		err := errors.Join(e.tcp.Close(), e.udp.Close())
		e.wg.Wait()
		if err != nil {
			e.closeErr = fmt.Errorf("lab: close echo server %s in netns %s: %w", e.addr, e.ns.name, err)
		}
	})
	return e.closeErr
}

// TCPEcho connects from inside the namespace to an Echo at addr and returns the source address the server saw.
func (n *NS) TCPEcho(addr string) (netip.AddrPort, error) {
	peer, err := n.echo("tcp", addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("lab: tcp echo %s from netns %s: %w", addr, n.name, err)
	}
	return peer, nil
}

// UDPEcho sends one datagram from inside the namespace to an Echo at addr and returns the source address the server saw.
func (n *NS) UDPEcho(addr string) (netip.AddrPort, error) {
	peer, err := n.echo("udp", addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("lab: udp echo %s from netns %s: %w", addr, n.name, err)
	}
	return peer, nil
}

func (n *NS) echo(network, addr string) (netip.AddrPort, error) {
	deadline := time.Now().Add(EchoTimeout)
	c, err := n.dial(network, addr, EchoTimeout)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return netip.AddrPort{}, err
	}
	var line string
	if network == "udp" {
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return netip.AddrPort{}, err
		}
		buf := make([]byte, 512)
		k, err := c.Read(buf)
		if err != nil {
			return netip.AddrPort{}, err
		}
		line = string(buf[:k])
	} else {
		line, err = bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return netip.AddrPort{}, err
		}
	}
	return parsePeerLine(line)
}

// parsePeerLine parses the server's "peer=<ip:port>\n".
func parsePeerLine(line string) (netip.AddrPort, error) {
	s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "peer=")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("reply %q: want peer=<ip:port>", line)
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("reply %q: %w", line, err)
	}
	return ap, nil
}
