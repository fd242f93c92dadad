package agent

import (
	"errors"
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
}

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
		return n, err
	}
}

// Events returns the view's events: EventUp once, closed with the view.
func (v *tunView) Events() <-chan wgtun.Event { return v.events }

// Close ends the view's reads; the TUN stays open.
func (v *tunView) Close() error {
	v.closeOnce.Do(func() {
		v.closed.Store(true)
		v.sharedTUN.SetReadDeadline(time.Now())
		close(v.events)
	})
	return nil
}
