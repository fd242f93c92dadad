package wireguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// OffloadBind is the edge's default conn.Bind on Linux: like wireguard-go's
// StdNetBind it listens on every address (a udp4 and a udp6 socket on one
// port) with UDP GRO and GSO and sticky sources (a reply leaves from the
// address its peer wrote to, IP_PKTINFO), but:
//
//   - it reads up to offloadReadBatch coalesced datagrams per system call,
//     and hands their segments out over as many receive calls as they
//     need, where StdNetBind reads two per call so that their segments fit
//     one batch: the Endpoint gets full batches, and the bursts it sends on
//     are as large as those that came in;
//   - it sends a GSO burst as one message whose segments are the callers'
//     buffers themselves (an iovec each), instead of copying them behind
//     the first;
//   - it does not allocate per received datagram: endpoints come from a
//     small per-receive-function cache (what a datagram's address costs in
//     x/net's batch reader remains, once per coalesced datagram).
type OffloadBind struct {
	mu    sync.Mutex // serializes Open and Close
	state atomic.Pointer[offloadState]
	tx    sync.Pool // *offloadTx
}

// Offload limits: the segments of one GSO send (the kernel's
// UDP_MAX_SEGMENTS on older kernels), the bytes of one (a UDP payload),
// and the coalesced datagrams one receive call reads.
const (
	offloadMaxSegments = 64
	offloadMaxBytes    = 1<<16 - 1 - 8 - 40
	offloadReadBatch   = 8
	offloadOOB         = 64 // room for UDP_GRO and a PKTINFO
)

type offloadState struct {
	v4, v6 *offloadSock // nil when the family is not available
	port   uint16
}

type offloadSock struct {
	conn *net.UDPConn
	pc   batchConn
	is6  bool
	gro  bool          // UDP_GRO is on
	gso  atomic.Bool   // UDP_SEGMENT works (off after the kernel refused it)
	sent atomic.Uint64 // messages handed to the kernel, a GSO burst counting once
	// coalesced counts the datagrams read that held several (GRO).
	coalesced atomic.Uint64
}

// OffloadEndpoint is an OffloadBind peer address with the local address
// (and interface) its datagrams arrived at, where replies leave from.
// Endpoints are shared and never changed once made.
type OffloadEndpoint struct {
	dst     netip.AddrPort
	src     netip.Addr
	ifindex int32
}

var (
	_ conn.Bind     = (*OffloadBind)(nil)
	_ conn.Endpoint = (*OffloadEndpoint)(nil)
)

// ClearSrc does nothing: endpoints are shared; Send falls back to no
// source address by itself when the kernel refuses the one recorded.
func (e *OffloadEndpoint) ClearSrc() {}

// SrcToString returns the local address replies leave from ("invalid IP" for none).
func (e *OffloadEndpoint) SrcToString() string { return e.src.String() }

// DstToString returns the peer's address and port.
func (e *OffloadEndpoint) DstToString() string { return e.dst.String() }

// DstIP returns the peer's address.
func (e *OffloadEndpoint) DstIP() netip.Addr { return e.dst.Addr() }

// SrcIP returns the local address replies leave from, if recorded.
func (e *OffloadEndpoint) SrcIP() netip.Addr { return e.src }

// AddrPort returns the peer's address and port.
func (e *OffloadEndpoint) AddrPort() netip.AddrPort { return e.dst }

// DstToBytes returns the destination as the cookie MACs use it (address
// bytes, then the port in little-endian order, as wireguard-go's).
func (e *OffloadEndpoint) DstToBytes() []byte {
	b, _ := e.dst.MarshalBinary()
	return b
}

// NewOffloadBind returns an unopened OffloadBind.
func NewOffloadBind() *OffloadBind {
	b := &OffloadBind{}
	b.tx.New = func() any { return newOffloadTx() }
	return b
}

// Open listens on port (0 picks one free in both families) and returns a
// receive function per socket, each for one goroutine at a time.
func (b *OffloadBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	var st *offloadState
	var err error
	for try := 0; try < 10; try++ {
		if st, err = openOffload(port); err == nil || port != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			break // a port picked for udp4 may be taken for udp6: pick again
		}
	}
	if err != nil {
		return nil, 0, err
	}
	b.state.Store(st)
	var fns []conn.ReceiveFunc
	for _, s := range []*offloadSock{st.v4, st.v6} {
		if s != nil {
			fns = append(fns, newOffloadRx(s).receive)
		}
	}
	return fns, st.port, nil
}

func openOffload(port uint16) (*offloadState, error) {
	st := &offloadState{}
	v4, p, err := listenOffload("udp4", port)
	if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
		return nil, err
	}
	if v4 != nil {
		st.v4, port = v4, p
	}
	v6, p, err := listenOffload("udp6", port)
	if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
		if v4 != nil {
			v4.conn.Close()
		}
		return nil, err
	}
	if v6 != nil {
		st.v6, port = v6, p
	}
	if st.v4 == nil && st.v6 == nil {
		return nil, fmt.Errorf("listen on UDP port %d: no IPv4 or IPv6 support", port)
	}
	st.port = port
	return st, nil
}

func listenOffload(network string, port uint16) (*offloadSock, uint16, error) {
	c, err := listenUDP(network, fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, 0, fmt.Errorf("listen on %s port %d: %w", network, port, err)
	}
	s := &offloadSock{conn: c, is6: network == "udp6"}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("listen on %s port %d: %w", network, port, err)
	}
	var serr error
	rc.Control(func(fd uintptr) {
		if s.is6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
		s.gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
		// UDP_SEGMENT has no socket option to probe: try it and fall back.
		s.gso.Store(true)
	})
	if serr != nil {
		c.Close()
		return nil, 0, fmt.Errorf("listen on %s port %d: enable packet info: %w", network, port, serr)
	}
	if s.is6 {
		s.pc = ipv6.NewPacketConn(c)
	} else {
		s.pc = ipv4.NewPacketConn(c)
	}
	return s, uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}

// Close stops listening; the receive functions then return net.ErrClosed.
func (b *OffloadBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state.Swap(nil)
	if st == nil {
		return nil
	}
	var errs []error
	for _, s := range []*offloadSock{st.v4, st.v6} {
		if s != nil {
			errs = append(errs, s.conn.Close())
		}
	}
	return errors.Join(errs...)
}

// SetMark does nothing: the edge marks no packets.
func (b *OffloadBind) SetMark(uint32) error { return nil }

// BatchSize is the most datagrams a receive or Send handles at once.
func (b *OffloadBind) BatchSize() int { return conn.IdealBatchSize }

// ParseEndpoint parses ip:port.
func (b *OffloadBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return &OffloadEndpoint{dst: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

// offloadRx is one socket's receive function and its buffers: datagrams
// read and not yet handed out stay in them for the next call.
type offloadRx struct {
	s     *offloadSock
	msgs  []ipv6.Message
	bufs  [][]byte
	next  int // first message not fully handed out
	n     int // messages read
	off   int // next segment of msgs[next]
	cache [256]*OffloadEndpoint
}

func newOffloadRx(s *offloadSock) *offloadRx {
	r := &offloadRx{s: s, msgs: make([]ipv6.Message, offloadReadBatch), bufs: make([][]byte, offloadReadBatch)}
	for i := range r.msgs {
		r.bufs[i] = make([]byte, 1<<16)
		r.msgs[i].Buffers = net.Buffers{r.bufs[i]}
		r.msgs[i].OOB = make([]byte, offloadOOB)
	}
	return r
}

func (r *offloadRx) receive(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	if r.next == r.n {
		for i := range r.msgs {
			r.msgs[i].N, r.msgs[i].NN, r.msgs[i].Addr = 0, 0, nil
		}
		n, err := r.s.pc.ReadBatch(r.msgs, 0)
		if err != nil {
			return 0, err
		}
		r.next, r.n, r.off = 0, n, 0
	}
	k := 0
	for r.next < r.n && k < len(bufs) {
		m := &r.msgs[r.next]
		seg, src, ifindex := parseOffloadOOB(m.OOB[:m.NN])
		ua, _ := m.Addr.(*net.UDPAddr)
		data := r.bufs[r.next][:m.N]
		if ua == nil || len(data) == 0 {
			r.next, r.off = r.next+1, 0
			continue
		}
		ep := r.endpoint(ua, src, ifindex)
		if seg <= 0 || seg >= len(data) {
			seg = len(data)
		} else if r.off == 0 {
			r.s.coalesced.Add(1)
		}
		for r.off < len(data) && k < len(bufs) {
			end := min(r.off+seg, len(data))
			sizes[k] = copy(bufs[k], data[r.off:end])
			eps[k] = ep
			k++
			r.off = end
		}
		if r.off >= len(data) {
			r.next, r.off = r.next+1, 0
		}
	}
	return k, nil
}

// endpoint returns the cached endpoint for a datagram from ua to src on
// ifindex, making one when its slot holds another.
func (r *offloadRx) endpoint(ua *net.UDPAddr, src netip.Addr, ifindex int32) *OffloadEndpoint {
	ap := ua.AddrPort()
	dst := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	a16 := dst.Addr().As16()
	h := uint32(dst.Port()) ^ uint32(ifindex)
	for _, x := range a16[12:] {
		h = h*31 + uint32(x)
	}
	slot := &r.cache[h%uint32(len(r.cache))]
	if e := *slot; e != nil && e.dst == dst && e.src == src && e.ifindex == ifindex {
		return e
	}
	e := &OffloadEndpoint{dst: dst, src: src, ifindex: ifindex}
	*slot = e
	return e
}

// parseOffloadOOB reads the GRO segment size and the local address and
// interface (PKTINFO) out of a datagram's control messages.
func parseOffloadOOB(oob []byte) (seg int, src netip.Addr, ifindex int32) {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return seg, src, ifindex
		}
		switch {
		case h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && len(data) >= 2:
			seg = int(binary.NativeEndian.Uint16(data))
			if len(data) >= 4 {
				seg = int(binary.NativeEndian.Uint32(data))
			}
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			src, ifindex = netip.AddrFrom4(info.Spec_dst), info.Ifindex
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			src, ifindex = netip.AddrFrom16(info.Addr), int32(info.Ifindex)
		}
		oob = rest
	}
	return seg, src, ifindex
}

// offloadTx is one Send's scratch, pooled so that Send does not allocate.
type offloadTx struct {
	msgs []ipv6.Message
	iovs []net.Buffers // msgs[i].Buffers, each with room for a GSO burst
	oobs [][]byte
	dst  udpDst
}

func newOffloadTx() *offloadTx {
	t := &offloadTx{msgs: make([]ipv6.Message, conn.IdealBatchSize), iovs: make([]net.Buffers, conn.IdealBatchSize),
		oobs: make([][]byte, conn.IdealBatchSize)}
	for i := range t.msgs {
		t.iovs[i] = make(net.Buffers, 0, offloadMaxSegments)
		t.oobs[i] = make([]byte, 0, offloadOOB)
	}
	return t
}

// Send writes bufs to ep: runs of buffers of one size (the last of a run
// may be shorter) go as one UDP GSO burst each.
func (b *OffloadBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	st := b.state.Load()
	if st == nil {
		return net.ErrClosed
	}
	dst, ok := ep.(*OffloadEndpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	a := dst.dst.Addr()
	s := st.v4
	if a.Is6() {
		s = st.v6
	}
	if s == nil {
		return fmt.Errorf("send to %s: %w", dst.dst, ErrAddressFamily)
	}
	tx := b.tx.Get().(*offloadTx)
	defer b.tx.Put(tx)
	tx.dst.set(dst.dst)
	sticky, gso := dst.src.IsValid(), s.gso.Load()
	err := b.write(s, tx, bufs, dst, sticky, gso)
	if err != nil && gso && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL)) {
		// EIO: no checksum offload on the way out, so no GSO at all;
		// EINVAL: a segment larger than the route's MTU. (A datagram the
		// kernel sent before the error goes twice: the receiver's replay
		// window drops the copy.)
		if errors.Is(err, unix.EIO) {
			s.gso.Store(false)
		}
		gso = false
		err = b.write(s, tx, bufs, dst, sticky, false)
	}
	if err != nil && sticky && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENETUNREACH)) {
		// The address the peer wrote to is gone: let the kernel pick.
		err = b.write(s, tx, bufs, dst, false, gso)
	}
	return err
}

// write packs bufs into tx's messages and sends them with sendmmsg.
func (b *OffloadBind) write(s *offloadSock, tx *offloadTx, bufs [][]byte, dst *OffloadEndpoint, sticky, gso bool) error {
	nm := 0
	for i := 0; i < len(bufs); nm++ {
		size := len(bufs[i])
		iov := tx.iovs[nm][:0]
		total := 0
		j := i
		for ; j < len(bufs) && len(iov) < cap(iov) && total+len(bufs[j]) <= offloadMaxBytes; j++ {
			if len(bufs[j]) > size || (!gso && j > i) {
				break
			}
			iov = append(iov, bufs[j])
			total += len(bufs[j])
			if len(bufs[j]) < size {
				j++
				break
			}
		}
		oob := tx.oobs[nm][:0]
		if sticky {
			oob = appendPktinfo(oob, dst)
		}
		if len(iov) > 1 {
			oob = appendSegment(oob, uint16(size))
		}
		tx.iovs[nm] = iov
		tx.msgs[nm] = ipv6.Message{Buffers: iov, OOB: oob, Addr: &tx.dst.addr}
		i = j
	}
	defer func() { // drop the references to the callers' buffers
		for i := range nm {
			clear(tx.iovs[i])
			tx.msgs[i] = ipv6.Message{}
		}
	}()
	ms := tx.msgs[:nm]
	for len(ms) > 0 {
		n, err := s.pc.WriteBatch(ms, 0)
		if err != nil {
			return err
		}
		ms = ms[n:]
	}
	s.sent.Add(uint64(nm))
	return nil
}

// appendSegment adds a UDP_SEGMENT control message (GSO segment size).
func appendSegment(oob []byte, size uint16) []byte {
	n := len(oob)
	oob = oob[:n+unix.CmsgSpace(2)]
	clear(oob[n:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[n]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[n+unix.CmsgLen(0):], size)
	return oob
}

// appendPktinfo adds the PKTINFO that makes a datagram leave from dst's
// recorded local address.
func appendPktinfo(oob []byte, dst *OffloadEndpoint) []byte {
	n := len(oob)
	if dst.src.Is4() {
		oob = oob[:n+unix.CmsgSpace(unix.SizeofInet4Pktinfo)]
		clear(oob[n:])
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[n]))
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[n+unix.CmsgLen(0)]))
		info.Spec_dst, info.Ifindex = dst.src.As4(), dst.ifindex
		return oob
	}
	oob = oob[:n+unix.CmsgSpace(unix.SizeofInet6Pktinfo)]
	clear(oob[n:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[n]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&oob[n+unix.CmsgLen(0)]))
	info.Addr, info.Ifindex = dst.src.As16(), uint32(dst.ifindex)
	return oob
}

// defaultBind is the bind an Endpoint or ProbeBind given none uses.
func defaultBind() conn.Bind { return NewOffloadBind() }
