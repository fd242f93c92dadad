package wireguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.zx2c4.com/wireguard/conn"
)

// addrBindBuffer is the socket buffer size AddrBind asks for (the kernel
// clamps it to net.core.{r,w}mem_max).
const addrBindBuffer = 7 << 20

// ErrAddressFamily is returned by AddrBind.Send for a destination of the
// other address family than the address the bind listens on.
var ErrAddressFamily = errors.New("wireguard: destination is of the other address family than the listening address")

// AddrBind is a conn.Bind that listens on one local address only, for an
// edge told to listen on a given host: wireguard-go's StdNetBind always
// listens on every address. It reads and writes batches (recvmmsg and
// sendmmsg on Linux, one datagram at a time elsewhere) but without UDP
// GSO/GRO, so the all-address OffloadBind (Linux) stays the faster default.
type AddrBind struct {
	addr  netip.Addr
	state atomic.Pointer[addrBindState]
	mu    sync.Mutex // serializes Open and Close
	tx    sync.Pool  // *addrBindTx: Send may run on many goroutines
}

type addrBindState struct {
	conn *net.UDPConn
	pc   batchConn
	is6  bool
}

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share (their
// Message types are one type).
type batchConn interface {
	ReadBatch(ms []ipv6.Message, flags int) (int, error)
	WriteBatch(ms []ipv6.Message, flags int) (int, error)
}

// addrBindTx is one Send's scratch, pooled so that Send does not allocate.
type addrBindTx struct {
	msgs []ipv6.Message
	dst  udpDst
}

// udpDst is a destination as x/net's batch writers take it, set without
// allocating (addr.IP points into ip).
type udpDst struct {
	addr net.UDPAddr
	ip   [16]byte
}

// set makes d ap (an unmapped address) and returns its address.
func (d *udpDst) set(ap netip.AddrPort) *net.UDPAddr {
	if a := ap.Addr(); a.Is6() {
		d.ip = a.As16()
		d.addr.IP = d.ip[:16]
	} else {
		v4 := a.As4()
		copy(d.ip[:], v4[:])
		d.addr.IP = d.ip[:4]
	}
	d.addr.Port = int(ap.Port())
	return &d.addr
}

// listenUDP opens a WireGuard socket (network udp4 or udp6) on address,
// with the outer datagrams' listen control (fragment_linux.go) and socket
// buffers of addrBindBuffer where the kernel allows.
func listenUDP(network, address string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: outerControl}
	pc, err := lc.ListenPacket(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	c := pc.(*net.UDPConn)
	c.SetReadBuffer(addrBindBuffer) // best effort, as wireguard-go's bind
	c.SetWriteBuffer(addrBindBuffer)
	return c, nil
}

var _ conn.Bind = (*AddrBind)(nil)

// NewAddrBind returns a Bind that listens on addr (IPv4 or IPv6, not
// unspecified) at the port Open is given.
func NewAddrBind(addr netip.Addr) (*AddrBind, error) {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsUnspecified() || addr.Zone() != "" {
		return nil, fmt.Errorf("wireguard.NewAddrBind(%s): need a specific address without a zone", addr)
	}
	b := &AddrBind{addr: addr}
	b.tx.New = func() any {
		t := &addrBindTx{msgs: make([]ipv6.Message, conn.IdealBatchSize)}
		for i := range t.msgs {
			t.msgs[i].Buffers = make(net.Buffers, 1)
		}
		return t
	}
	return b, nil
}

// Open listens on the bind's address and port (0 picks one). It returns one
// receive function, which must be called from one goroutine at a time.
func (b *AddrBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	st := &addrBindState{is6: b.addr.Is6()}
	network := "udp4"
	if st.is6 {
		network = "udp6"
	}
	la := netip.AddrPortFrom(b.addr, port)
	c, err := listenUDP(network, la.String())
	if err != nil {
		return nil, 0, fmt.Errorf("listen on %s: %w", la, err)
	}
	st.conn = c
	if st.is6 {
		st.pc = ipv6.NewPacketConn(c)
	} else {
		st.pc = ipv4.NewPacketConn(c)
	}
	b.state.Store(st)
	msgs := make([]ipv6.Message, conn.IdealBatchSize) // the receive goroutine's own
	for i := range msgs {
		msgs[i].Buffers = make(net.Buffers, 1)
	}
	recv := func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		ms := msgs[:min(len(bufs), len(msgs))]
		for i := range ms {
			ms[i].Buffers[0], ms[i].Addr, ms[i].N = bufs[i], nil, 0
		}
		n, err := st.pc.ReadBatch(ms, 0)
		if err != nil {
			return 0, err
		}
		for i := range n {
			sizes[i] = ms[i].N
			a, ok := ms[i].Addr.(*net.UDPAddr)
			if !ok {
				sizes[i] = 0
				continue
			}
			ap := a.AddrPort()
			eps[i] = &conn.StdNetEndpoint{AddrPort: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
		}
		return n, nil
	}
	return []conn.ReceiveFunc{recv}, uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}

// Close stops listening; the receive function then returns net.ErrClosed.
func (b *AddrBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state.Swap(nil)
	if st == nil {
		return nil
	}
	return st.conn.Close()
}

// SetMark does nothing: the edge marks no packets.
func (b *AddrBind) SetMark(uint32) error { return nil }

// Send writes bufs to ep, an endpoint from this bind.
func (b *AddrBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	st := b.state.Load()
	if st == nil {
		return net.ErrClosed
	}
	dst, ok := ep.(*conn.StdNetEndpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	a := dst.Addr().Unmap()
	if a.Is6() != st.is6 {
		return fmt.Errorf("send to %s: %w", dst.AddrPort, ErrAddressFamily)
	}
	tx := b.tx.Get().(*addrBindTx)
	defer b.tx.Put(tx)
	to := tx.dst.set(netip.AddrPortFrom(a, dst.Port()))
	ms := tx.msgs[:len(bufs)]
	for i := range ms {
		ms[i].Buffers[0], ms[i].Addr = bufs[i], to
	}
	for len(ms) > 0 {
		n, err := st.pc.WriteBatch(ms, 0)
		if err != nil {
			return err
		}
		ms = ms[n:]
	}
	return nil
}

// ParseEndpoint parses ip:port.
func (b *AddrBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return &conn.StdNetEndpoint{AddrPort: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

// BatchSize is the most datagrams a receive or Send handles at once.
func (b *AddrBind) BatchSize() int { return conn.IdealBatchSize }
