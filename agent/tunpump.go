package agent

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"
)

// pumpBatches is how many batches a tunPump keeps: one a view consumes,
// one read ahead.
const pumpBatches = 2

// pumpBufSize is a tunPump buffer: the largest IP packet.
const pumpBufSize = 65535

// tunPump is the sharedTUN of a TUN without a pollable file (Seams.TUN:
// tuntest's ChannelTUN, a netstack): a goroutine of its own reads the TUN,
// and a view's Read takes the batches it read, so that a read deadline can
// interrupt the view while the TUN's own Read stays blocked. The batches'
// buffers are reused: nothing is allocated per packet. Writes go straight to
// the TUN. Close closes the TUN and waits for the goroutine.
type tunPump struct {
	wgtun.Device

	full  chan *pumpBatch // read from the TUN, for a view
	empty chan *pumpBatch // consumed, for the next read
	cur   *pumpBatch      // partly consumed; only the one reading view touches it

	mu       sync.Mutex
	deadline chan struct{} // closed while the read deadline has passed

	// injected are packets to hand out as if read from the TUN (heartbeat
	// probes: the host's sockets do not reach a Seams.TUN), and take, if
	// set, takes packets out of what is written to it (their replies).
	injected chan []byte
	take     atomic.Pointer[func([]byte) bool]

	closed    chan struct{}
	done      chan struct{} // closed when the goroutine ends
	closeOnce sync.Once
}

// pumpBatch is one Read of the TUN.
type pumpBatch struct {
	bufs    [][]byte
	sizes   []int
	n, next int // packets read, and the next one to hand out
	err     error
}

var _ sharedTUN = (*tunPump)(nil)

// newTUNPump starts reading dev.
func newTUNPump(dev wgtun.Device) *tunPump {
	p := &tunPump{Device: dev, full: make(chan *pumpBatch), empty: make(chan *pumpBatch, pumpBatches),
		deadline: make(chan struct{}), closed: make(chan struct{}), done: make(chan struct{}), injected: make(chan []byte, 16)}
	n := max(dev.BatchSize(), 1)
	for range pumpBatches {
		b := &pumpBatch{bufs: make([][]byte, n), sizes: make([]int, n)}
		for i := range b.bufs {
			b.bufs[i] = make([]byte, pumpBufSize)
		}
		p.empty <- b
	}
	go p.run()
	return p
}

// run reads batches until the TUN fails or closes.
func (p *tunPump) run() {
	defer close(p.done)
	for {
		var b *pumpBatch
		select {
		case b = <-p.empty:
		case <-p.closed:
			return
		}
		b.n, b.err = p.Device.Read(b.bufs, b.sizes, 0)
		b.next = 0
		select {
		case p.full <- b:
		case <-p.closed:
			return
		}
		if b.err != nil && !errors.Is(b.err, wgtun.ErrTooManySegments) {
			return // as wireguard-go's device does: any other error ends the TUN
		}
	}
}

// Read hands out the packets the goroutine read, copied to offset in bufs;
// once the TUN ended it returns os.ErrClosed, and while the read deadline
// has passed os.ErrDeadlineExceeded.
func (p *tunPump) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if p.cur == nil {
		p.mu.Lock()
		deadline := p.deadline
		p.mu.Unlock()
		select {
		case p.cur = <-p.full:
		case pkt := <-p.injected:
			sizes[0] = copy(bufs[0][offset:], pkt)
			return 1, nil
		case <-deadline:
			return 0, os.ErrDeadlineExceeded
		case <-p.done:
			return 0, os.ErrClosed
		}
	}
	b := p.cur
	n := 0
	for ; n < len(bufs) && b.next < b.n; n++ {
		sizes[n] = copy(bufs[n][offset:], b.bufs[b.next][:b.sizes[b.next]])
		b.next++
	}
	if b.next < b.n {
		return n, nil
	}
	err := b.err
	p.cur = nil
	p.empty <- b // never blocks: it holds every batch
	return n, err
}

// inject hands pkt to the next Read as if the TUN had read it; it drops
// pkt when the readers lag 16 packets behind, as a full queue would.
func (p *tunPump) inject(pkt []byte) {
	select {
	case p.injected <- pkt:
	default:
	}
}

// setTake makes fn see every packet written to the TUN first: those it
// reports taken are not written.
func (p *tunPump) setTake(fn func([]byte) bool) { p.take.Store(&fn) }

// Write writes bufs to the TUN but for the packets take takes; without
// take, straight.
func (p *tunPump) Write(bufs [][]byte, offset int) (int, error) {
	take := p.take.Load()
	if take == nil {
		return p.Device.Write(bufs, offset)
	}
	n, start := 0, 0
	var errs error
	flush := func(end int) {
		if start < end {
			m, err := p.Device.Write(bufs[start:end], offset)
			n += m
			errs = errors.Join(errs, err)
		}
	}
	for i, b := range bufs {
		if (*take)(b[offset:]) {
			flush(i)
			n++
			start = i + 1
		}
	}
	flush(len(bufs))
	return n, errs
}

// SetReadDeadline implements sharedTUN; only a zero time (no deadline) and
// one not in the future (interrupt now) are supported.
func (p *tunPump) SetReadDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	passed := false
	select {
	case <-p.deadline:
		passed = true
	default:
	}
	switch {
	case t.IsZero() && passed:
		p.deadline = make(chan struct{})
	case !t.IsZero() && !passed:
		close(p.deadline)
	}
	return nil
}

// Close closes the TUN and waits for the goroutine to end.
func (p *tunPump) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = p.Device.Close()
		close(p.closed)
		<-p.done
	})
	return err
}
