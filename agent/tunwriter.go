package agent

import (
	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/switchyard/switchyard/transport/masque"
)

// Sizes of a tunWriter: writeBatch buffers of the most a TUN write with
// segmentation offload takes (one coalesced TCP or UDP packet of at most
// 64 KiB), with masque.Headroom in front for the virtio header: 4 MiB per
// MASQUE session.
const (
	writeBatch   = 64
	writeBufSize = masque.Headroom + 65535
)

// tunWriter writes the packets of a MASQUE session into the TUN. It copies
// each batch into buffers of its own that can hold a coalesced packet:
// wireguard-go's TUN Write coalesces the TCP segments (and UDP datagrams)
// of one flow into one write, GRO, only into a first packet whose buffer
// has room for the rest, and the session's buffers have room for one
// datagram. Without that, every packet is a write system call of its own.
// Receive runs on the session's one delivering goroutine.
type tunWriter struct {
	tun  wgtun.Device
	bufs [][]byte // writeBatch buffers of writeBufSize
	out  [][]byte // this write's packets, in bufs
}

// newTUNWriter returns a tunWriter into tun.
func newTUNWriter(tun wgtun.Device) *tunWriter {
	w := &tunWriter{tun: tun, bufs: make([][]byte, writeBatch), out: make([][]byte, 0, writeBatch)}
	for i := range w.bufs {
		w.bufs[i] = make([]byte, writeBufSize)
	}
	return w
}

// Receive writes a batch into the TUN, writeBatch packets at a time; the
// kernel drops what it cannot take.
func (w *tunWriter) Receive(_ *masque.Session, bufs [][]byte) {
	for len(bufs) > 0 {
		n := min(len(bufs), writeBatch)
		w.out = w.out[:0]
		for i, b := range bufs[:n] {
			m := copy(w.bufs[i][masque.Headroom:], b[masque.Headroom:])
			w.out = append(w.out, w.bufs[i][:masque.Headroom+m])
		}
		w.tun.Write(w.out, masque.Headroom)
		bufs = bufs[n:]
	}
}
