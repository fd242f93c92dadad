package agent

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"
)

// tunView lends the host's TUN to one transport at a time (a wireguard-go
// device, or the MASQUE pump) without closing it: Close makes a blocked
// Read return os.ErrClosed by a read deadline on the TUN's file, so the next
// transport can take over the same interface, routes and MSS clamp.
// Preconditions: one view reads at a time, and the TUN's file is pollable
// (wireguard-go opens it non-blocking).
type tunView struct {
	wgtun.Device
	closed    atomic.Bool
	events    chan wgtun.Event
	closeOnce sync.Once
}

var _ wgtun.Device = (*tunView)(nil)

// newTUNView returns a view of dev; the previous view must be closed and
// its reader gone.
func newTUNView(dev wgtun.Device) *tunView {
	dev.File().SetReadDeadline(time.Time{})
	v := &tunView{Device: dev, events: make(chan wgtun.Event, 1)}
	v.events <- wgtun.EventUp
	return v
}

// Read reads from the TUN until the view is closed.
func (v *tunView) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		if v.closed.Load() {
			return 0, os.ErrClosed
		}
		n, err := v.Device.Read(bufs, sizes, offset)
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
		v.Device.File().SetReadDeadline(time.Now())
		close(v.events)
	})
	return nil
}
