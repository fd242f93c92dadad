package edge

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
)

// Session expiry. A device whose user signed in has a session that ends at
// Device.SessionExpiresAt; past it the edge drops the device's traffic at
// once, whether or not anything was written to the store then: the data
// plane applies its last snapshot again at the earliest end still to come,
// leaving out the devices whose session ended (their WireGuard peers go,
// their MASQUE sessions close, their names leave the DNS). The registry
// refuses their credential too (model.ErrSessionExpired), so they do not
// come back over MASQUE.

// expiry is when the next device session ends, and a kick for the goroutine
// that waits for it.
type expiry struct {
	mu   sync.Mutex
	next time.Time // zero: no session to wait for
	kick chan struct{}
}

// set records the next session end and wakes the waiting goroutine.
func (e *expiry) set(next time.Time) {
	e.mu.Lock()
	changed := !e.next.Equal(next)
	e.next = next
	e.mu.Unlock()
	if changed {
		select {
		case e.kick <- struct{}{}:
		default:
		}
	}
}

func (e *expiry) get() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.next
}

// liveSessions returns s without the devices whose session ended by now,
// and the earliest session end after now (zero for none).
func liveSessions(s registry.Snapshot, now time.Time) (registry.Snapshot, time.Time) {
	var next time.Time
	live := make([]model.Device, 0, len(s.Devices))
	for _, dev := range s.Devices {
		if dev.SessionEnded(now) {
			continue
		}
		if at := dev.SessionExpiresAt; at != nil && (next.IsZero() || at.Before(next)) {
			next = *at
		}
		live = append(live, dev)
	}
	s.Devices = live
	return s, next
}

// expireSessions applies the last snapshot again at each session's end,
// until ctx ends.
func (d *dataplane) expireSessions(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.expiry.kick:
			t.Stop()
			if next := d.expiry.get(); !next.IsZero() {
				t.Reset(time.Until(next))
			}
		case <-t.C:
			d.applyMu.Lock()
			before := len(d.last.Devices)
			d.applyLive(d.raw, time.Now())
			ended := before - len(d.last.Devices)
			d.applyMu.Unlock()
			if ended > 0 {
				d.log.Info("device sessions ended", "devices", ended)
			}
			if next := d.expiry.get(); !next.IsZero() {
				t.Reset(time.Until(next))
			}
		}
	}
}
