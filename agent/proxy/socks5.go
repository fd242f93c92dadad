package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// SOCKS5 constants (RFC 1928).
const (
	socksVersion     = 5
	methodNone       = 0x00
	methodNoneUsable = 0xff
	cmdConnect       = 1
	cmdUDPAssociate  = 3
	atypIPv4         = 1
	atypDomain       = 3
	atypIPv6         = 4
)

// SOCKS5 replies (RFC 1928 section 6).
const (
	repSucceeded          = 0
	repGeneralFailure     = 1
	repNetworkUnreachable = 3
	repHostUnreachable    = 4
	repConnectionRefused  = 5
	repCommandNotSupp     = 7
	repAddrTypeNotSupp    = 8
)

// ServeSOCKS5 serves SOCKS5 (no authentication; CONNECT and UDP ASSOCIATE)
// on l until ctx ends or l fails; it closes l and every connection it
// accepted before it returns.
func (s *Server) ServeSOCKS5(ctx context.Context, l net.Listener) error {
	return s.serve(ctx, l, s.socks5)
}

// errAddrType is a request's address of a type SOCKS5 does not have.
var errAddrType = errors.New("socks5: unknown address type")

// socks5 handles one SOCKS5 connection.
func (s *Server) socks5(ctx context.Context, c net.Conn) {
	r := bufio.NewReader(c)
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil || hdr[0] != socksVersion {
		return
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return
	}
	method := byte(methodNoneUsable)
	for _, m := range methods {
		if m == methodNone {
			method = methodNone
		}
	}
	if _, err := c.Write([]byte{socksVersion, method}); err != nil || method != methodNone {
		return
	}
	var req [3]byte // VER CMD RSV
	if _, err := io.ReadFull(r, req[:]); err != nil || req[0] != socksVersion {
		return
	}
	host, port, err := readAddr(r)
	if err != nil {
		reply(c, repAddrTypeNotSupp, netip.AddrPort{})
		return
	}
	switch req[1] {
	case cmdConnect:
		s.socksConnect(ctx, c, r, host, port)
	case cmdUDPAssociate:
		s.socksUDP(ctx, c)
	default:
		reply(c, repCommandNotSupp, netip.AddrPort{})
	}
}

// socksConnect dials host:port and splices it with c.
func (s *Server) socksConnect(ctx context.Context, c net.Conn, r *bufio.Reader, host string, port uint16) {
	out, err := s.dial(ctx, host, port)
	if err != nil {
		s.log().Debug("socks5 connect", "dst", net.JoinHostPort(host, strconv.Itoa(int(port))), "err", err)
		reply(c, replyCode(err), netip.AddrPort{})
		return
	}
	if err := reply(c, repSucceeded, addrPortOf(out.LocalAddr())); err != nil {
		out.Close()
		return
	}
	Splice(&bufferedConn{Conn: c, r: r}, out)
}

// readAddr reads ATYP, DST.ADDR and DST.PORT.
func readAddr(r io.Reader) (string, uint16, error) {
	var atyp [1]byte
	if _, err := io.ReadFull(r, atyp[:]); err != nil {
		return "", 0, err
	}
	var host string
	switch atyp[0] {
	case atypIPv4, atypIPv6:
		b := make([]byte, 4)
		if atyp[0] == atypIPv6 {
			b = make([]byte, 16)
		}
		if _, err := io.ReadFull(r, b); err != nil {
			return "", 0, err
		}
		a, _ := netip.AddrFromSlice(b)
		host = a.String()
	case atypDomain:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return "", 0, err
		}
		b := make([]byte, n[0])
		if _, err := io.ReadFull(r, b); err != nil {
			return "", 0, err
		}
		host = string(b)
	default:
		return "", 0, errAddrType
	}
	var p [2]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return "", 0, err
	}
	return host, binary.BigEndian.Uint16(p[:]), nil
}

// appendAddr appends ATYP, ADDR and PORT of ap.
func appendAddr(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr().Unmap()
	if a.Is6() {
		b = append(b, atypIPv6)
	} else {
		if !a.IsValid() {
			a = netip.IPv4Unspecified()
		}
		b = append(b, atypIPv4)
	}
	b = append(b, a.AsSlice()...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// reply writes a SOCKS5 reply with the bound address bnd.
func reply(c net.Conn, code byte, bnd netip.AddrPort) error {
	_, err := c.Write(appendAddr([]byte{socksVersion, code, 0}, bnd))
	return err
}

// replyCode maps a dial error to a SOCKS5 reply.
func replyCode(err error) byte {
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return repConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return repNetworkUnreachable
	case errors.As(err, &dns), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, context.DeadlineExceeded):
		return repHostUnreachable
	}
	return repGeneralFailure
}

// addrPortOf is a net.Addr's address and port; zero if it has none.
func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// bufferedConn is a connection whose first bytes a bufio.Reader already read.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

// Read reads what the reader buffered, then the connection.
func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite passes on a half close.
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return b.Conn.Close()
}

// SetLinger passes on a reset on Close, where the connection has one.
func (b *bufferedConn) SetLinger(sec int) error {
	if l, ok := b.Conn.(lingerer); ok {
		return l.SetLinger(sec)
	}
	return fmt.Errorf("set linger on %s: %w", b.Conn.RemoteAddr(), errors.ErrUnsupported)
}
