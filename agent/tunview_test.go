package agent

import (
	"errors"
	"os"
	"testing"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"
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
// open: the next view reads what comes after.
func TestTUNViewHandsOver(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	dev := &pipeTUN{r: r, w: w}
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
	if _, err := w.Write([]byte("packet")); err != nil {
		t.Fatal(err)
	}
	buf, sizes := [][]byte{make([]byte, 64)}, []int{0}
	if n, err := second.Read(buf, sizes, 0); err != nil || n != 1 || string(buf[0][:sizes[0]]) != "packet" {
		t.Fatalf("second view Read = %d, %v, %q; want the packet", n, err, buf[0][:sizes[0]])
	}
}
