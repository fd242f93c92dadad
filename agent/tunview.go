package agent

import (
	"net/netip"

	"errors"
	"github.com/switchyard/switchyard/router"
	"os"
	"sync"
	"sync/atomic"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"
)

// sharedTUN is a TUN whose blocked Read a read deadline in the past
// interrupts with os.ErrDeadlineExceeded, as on a pollable file.
type sharedTUN interface {
	wgtun.Device
	SetReadDeadline(t time.Time) error
}

// shareTUN returns dev as a sharedTUN: a TUN with a pollable file (the
// kernel's, which wireguard-go opens non-blocking) by its file's read
// deadline, any other (Seams.TUN) through a tunPump. Closing the result
// closes dev.
func shareTUN(dev wgtun.Device) sharedTUN {
	if dev.File() != nil {
		return fileTUN{dev}
	}
	return newTUNPump(dev)
}

// fileTUN interrupts reads by the read deadline of the TUN's file.
type fileTUN struct{ wgtun.Device }

// SetReadDeadline implements sharedTUN.
func (f fileTUN) SetReadDeadline(t time.Time) error { return f.File().SetReadDeadline(t) }

// tunView lends the host's TUN to one transport at a time (a wireguard-go
// device, or the MASQUE pump) without closing it: Close makes a blocked
// Read return os.ErrClosed by a read deadline on the TUN, so the next
// transport can take over the same interface, routes and MSS clamp.
// Precondition: one view reads at a time.
type tunView struct {
	sharedTUN
	closed    atomic.Bool
	events    chan wgtun.Event
	closeOnce sync.Once
	eventsMu  sync.Mutex   // orders setMTU's event before Close closes events
	mtu       atomic.Int32 // setMTU; 0: the TUN's
	icmp      []byte       // Read's buffer for ICMP errors (one reader)
	lastICMP  time.Time    // Read's rate limit of them
}

// icmpGap is the least time between two ICMP errors a view writes.
const icmpGap = 10 * time.Millisecond

var _ wgtun.Device = (*tunView)(nil)

// newTUNView returns a view of dev; the previous view must be closed and
// its reader gone.
func newTUNView(dev sharedTUN) *tunView {
	dev.SetReadDeadline(time.Time{})
	v := &tunView{sharedTUN: dev, events: make(chan wgtun.Event, 1)}
	v.events <- wgtun.EventUp
	return v
}

// Read reads from the TUN until the view is closed.
func (v *tunView) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		if v.closed.Load() {
			return 0, os.ErrClosed
		}
		n, err := v.sharedTUN.Read(bufs, sizes, offset)
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			continue // Close interrupted the read
		}
		if m := int(v.mtu.Load()); m > 0 && m < minIPv6MTU {
			v.tooBig4(bufs[:n], sizes, offset, m)
		}
		return n, err
	}
}

// tooBig4 answers IPv4 packets with DF larger than mtu, an IPv4 path MTU
// below the 1280 bytes the TUN keeps for IPv6, with ICMP Fragmentation
// Needed written back into the TUN, and takes them out of the batch (size
// 0, which wireguard-go skips). The error comes from the packet's
// destination, an address the host routes into the TUN, so that reverse
// path filters pass it. Larger IPv4 packets without DF go on: their outer
// datagrams fragment.
func (v *tunView) tooBig4(bufs [][]byte, sizes []int, offset, mtu int) {
	for i := range bufs {
		pkt := bufs[i][offset : offset+sizes[i]]
		if len(pkt) <= mtu || len(pkt) < 20 || pkt[0]>>4 != 4 {
			continue
		}
		if v.icmp == nil {
			v.icmp = make([]byte, offset+router.IcmpBufSize)
		}
		reply := router.FragNeeded(v.icmp[offset:], netip.AddrFrom4([4]byte(pkt[16:20])), pkt, mtu)
		if reply == nil {
			continue
		}
		sizes[i] = 0
		if now := time.Now(); now.Sub(v.lastICMP) >= icmpGap {
			v.lastICMP = now
			v.sharedTUN.Write([][]byte{v.icmp[:offset+len(reply)]}, offset)
		}
	}
}

// MTU is what wireguard-go caps its padding at: the path MTU's inner size
// once setMTU has set it (less than the TUN's on an IPv4 path below 1340
// bytes), else the TUN's.
func (v *tunView) MTU() (int, error) {
	if m := v.mtu.Load(); m > 0 {
		return int(m), nil
	}
	return v.sharedTUN.MTU()
}

// MTUOrZero is MTU, 0 on an error.
func (v *tunView) MTUOrZero() int {
	m, err := v.MTU()
	if err != nil {
		return 0
	}
	return m
}

// setMTU changes the MTU the view reports and tells the device.
func (v *tunView) setMTU(mtu int) {
	if v.mtu.Swap(int32(mtu)) == int32(mtu) {
		return
	}
	v.eventsMu.Lock()
	defer v.eventsMu.Unlock()
	if v.closed.Load() {
		return
	}
	select {
	case v.events <- wgtun.EventMTUUpdate:
	default: // one is pending; the device reads MTU when it takes it
	}
}

// Events returns the view's events: EventUp once, EventMTUUpdate after
// setMTU, closed with the view.
func (v *tunView) Events() <-chan wgtun.Event { return v.events }

// Close ends the view's reads; the TUN stays open.
func (v *tunView) Close() error {
	v.closeOnce.Do(func() {
		v.eventsMu.Lock()
		v.closed.Store(true)
		v.sharedTUN.SetReadDeadline(time.Now())
		close(v.events)
		v.eventsMu.Unlock()
	})
	return nil
}
