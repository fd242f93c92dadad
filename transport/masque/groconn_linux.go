package masque

import (
	"encoding/binary"
	"net"
	"runtime"

	xipv4 "golang.org/x/net/ipv4" // as xipv4: the tests have an ipv4 of their own
	"golang.org/x/sys/unix"
)

// Receive offload. quic-go reads its socket batchSize (8) datagrams per
// recvmmsg and has no UDP_GRO of its own, so the kernel splits every GSO
// batch the peer sends back into datagrams before quic-go reads them. A
// socket with UDP_GRO gets a batch as one coalesced datagram instead, and
// groConn splits it in user space: quic-go reads through a connection's
// ReadBatch when it has one (its batchConn), which groConn implements.
const (
	groBatch   = 8     // coalesced datagrams per recvmmsg
	groBufSize = 65535 // the largest coalesced datagram
	groOOBSize = 128   // room for UDP_GRO, TOS/TCLASS and PKTINFO
)

// groConn is a UDP socket with UDP_GRO whose ReadBatch hands out the
// segments of the coalesced datagrams it read, one per message, each with
// its datagram's address and control messages (quic-go ignores UDP_GRO's).
// One goroutine reads (quic-go's Transport); writes go straight to the
// socket, GSO included.
type groConn struct {
	*net.UDPConn
	pc   *xipv4.PacketConn
	msgs []xipv4.Message
	n    int // messages read by the last recvmmsg
	next int // the message being split
	off  int // where its next segment starts
	seg  int // its segment size; 0: not coalesced
}

// withGRO returns c with UDP_GRO on, as a groConn, or c itself if the
// kernel refuses UDP_GRO.
func withGRO(c *net.UDPConn) net.PacketConn {
	raw, err := c.SyscallConn()
	if err != nil {
		return c
	}
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	}); err != nil || sockErr != nil {
		return c
	}
	g := &groConn{UDPConn: c, pc: xipv4.NewPacketConn(c), msgs: make([]xipv4.Message, groBatch)}
	for i := range g.msgs {
		g.msgs[i].Buffers = [][]byte{make([]byte, groBufSize)}
		g.msgs[i].OOB = make([]byte, groOOBSize)
	}
	return g
}

// ReadBatch fills ms with the next segments, reading the socket when none
// is left; it returns at most len(ms) and at least one (or an error).
//
// Before it hands out more of what it read already, it yields: quic-go's
// reader goroutine calls it in a loop, 8 packets at a time, and one GSO
// burst holds up to 64. Without the yield the whole burst reaches the
// connection before its run loop, HTTP/3's datagram dispatcher and the
// session's reader get to run on a busy host, and the per-request queue of
// 32 datagrams between the last two drops the rest. In make bench's
// MASQUE path (2 cores) the yield cut the inner TCP's retransmissions per
// GB by a quarter and the edge's CPU per GB by a tenth, and raised
// throughput by a quarter.
func (g *groConn) ReadBatch(ms []xipv4.Message, flags int) (int, error) {
	if g.next < g.n {
		runtime.Gosched()
	}
	if g.next >= g.n {
		n, err := g.pc.ReadBatch(g.msgs, flags)
		if err != nil {
			return 0, err
		}
		g.n, g.next, g.off = n, 0, 0
		g.seg = segmentSize(g.msgs[0].OOB[:g.msgs[0].NN])
	}
	k := 0
	for ; k < len(ms) && g.next < g.n; k++ {
		m := &g.msgs[g.next]
		data := m.Buffers[0][g.off:m.N]
		if g.seg > 0 && g.seg < len(data) {
			data = data[:g.seg]
		}
		ms[k].N = copy(ms[k].Buffers[0], data)
		ms[k].NN = copy(ms[k].OOB, m.OOB[:m.NN])
		ms[k].Addr, ms[k].Flags = m.Addr, m.Flags
		if g.off += len(data); g.off >= m.N {
			g.next, g.off = g.next+1, 0
			if g.next < g.n {
				g.seg = segmentSize(g.msgs[g.next].OOB[:g.msgs[g.next].NN])
			}
		}
	}
	return k, nil
}

// segmentSize is the segment size a UDP_GRO control message in oob gives,
// or 0 if there is none (a datagram that was not coalesced).
func segmentSize(oob []byte) int {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && len(data) >= 4 {
			return int(binary.NativeEndian.Uint32(data)) // an int
		}
		oob = rest
	}
	return 0
}
