package agent

import (
	"errors"
	"os"
	"testing"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// pipeTUN is a TUN whose packets come from a pipe: a pollable file, like a
// kernel TUN opened non-blocking.
type pipeTUN struct {
	r, w *os.File
}

var _ wgtun.Device = (*pipeTUN)(nil)

func (p *pipeTUN) File() *os.File { return p.r }
func (p *pipeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := p.r.Read(bufs[0][offset:])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}
func (p *pipeTUN) Write(bufs [][]byte, offset int) (int, error) { return len(bufs), nil }
func (p *pipeTUN) MTU() (int, error)                            { return 1400, nil }
func (p *pipeTUN) Name() (string, error)                        { return "pipe", nil }
func (p *pipeTUN) Events() <-chan wgtun.Event                   { return nil }
func (p *pipeTUN) BatchSize() int                               { return 1 }
func (p *pipeTUN) Close() error                                 { return errors.Join(p.r.Close(), p.w.Close()) }

// Closing a view ends its blocked Read with os.ErrClosed and leaves the TUN
// open: the next view reads what comes after. A kernel TUN's pollable file
// is interrupted by its read deadline; a TUN without a file (tuntest's, as
// Seams.TUN) through a tunPump.
func TestTUNViewHandsOver(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (dev sharedTUN, send func([]byte))
	}{
		{"pollable file", func(t *testing.T) (sharedTUN, func([]byte)) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			dev := shareTUN(&pipeTUN{r: r, w: w})
			if _, ok := dev.(fileTUN); !ok {
				t.Fatalf("shareTUN of a TUN with a file = %T, want fileTUN", dev)
			}
			return dev, func(p []byte) {
				if _, err := w.Write(p); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"no file", func(t *testing.T) (sharedTUN, func([]byte)) {
			ch := tuntest.NewChannelTUN()
			dev := shareTUN(ch.TUN())
			if _, ok := dev.(*tunPump); !ok {
				t.Fatalf("shareTUN of a TUN without a file = %T, want *tunPump", dev)
			}
			return dev, func(p []byte) { ch.Outbound <- p }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, send := tc.open(t)
			defer dev.Close()

			first := newTUNView(dev)
			if ev := <-first.Events(); ev != wgtun.EventUp {
				t.Fatalf("first event %v, want EventUp", ev)
			}
			done := make(chan error, 1)
			go func() {
				_, err := first.Read([][]byte{make([]byte, 64)}, []int{0}, 0)
				done <- err
			}()
			time.Sleep(50 * time.Millisecond) // let Read block
			first.Close()
			select {
			case err := <-done:
				if !errors.Is(err, os.ErrClosed) {
					t.Fatalf("Read after Close = %v, want os.ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not end the blocked Read")
			}
			if _, ok := <-first.Events(); ok {
				t.Fatal("the closed view's events are still open")
			}

			second := newTUNView(dev)
			defer second.Close()
			go send([]byte("packet"))
			buf, sizes := [][]byte{make([]byte, 64)}, []int{0}
			if n, err := second.Read(buf, sizes, 16); err != nil || n != 1 || string(buf[0][16:16+sizes[0]]) != "packet" {
				t.Fatalf("second view Read = %d, %v, %q; want the packet", n, err, buf[0][16:16+sizes[0]])
			}
		})
	}
}

// TestTUNPumpEndsWithItsTUN: closing a tunPump closes its TUN, ends its
// goroutine and makes Read return os.ErrClosed; reading allocates nothing.
func TestTUNPumpEndsWithItsTUN(t *testing.T) {
	ch := tuntest.NewChannelTUN()
	p := newTUNPump(ch.TUN())
	pkt := make([]byte, 100)
	bufs, sizes := [][]byte{make([]byte, 200)}, []int{0}
	allocs := testing.AllocsPerRun(100, func() {
		ch.Outbound <- pkt
		if n, err := p.Read(bufs, sizes, 16); n != 1 || err != nil || sizes[0] != len(pkt) {
			t.Fatalf("Read = %d, %v, size %d", n, err, sizes[0])
		}
	})
	if allocs != 0 {
		t.Errorf("a tunPump Read allocates %v times, want 0", allocs)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	default:
		t.Fatal("Close returned before the pump's goroutine ended")
	}
	if _, err := p.Read(bufs, sizes, 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close = %v, want os.ErrClosed", err)
	}
	for ev := range ch.TUN().Events() { // closed with the TUN
		if ev != wgtun.EventUp {
			t.Fatalf("event %v after Close", ev)
		}
	}
}
