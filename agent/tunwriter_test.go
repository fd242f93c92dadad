package agent

import (
	"bytes"
	"testing"

	wgtun "golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/transport/masque"
)

// recordTUN is a TUN that records what each Write got.
type recordTUN struct {
	wgtun.Device
	writes [][][]byte
	caps   []int
}

func (r *recordTUN) Write(bufs [][]byte, offset int) (int, error) {
	var pkts [][]byte
	for _, b := range bufs {
		pkts = append(pkts, bytes.Clone(b[offset:]))
		r.caps = append(r.caps, cap(b)-offset)
	}
	r.writes = append(r.writes, pkts)
	return len(bufs), nil
}

// TestTUNWriterRoomToCoalesce: the TUN gets every packet of a session's
// batch, unchanged and in order, writeBatch at a time, each in a buffer
// with room for a 64 KiB coalesced packet (GRO), not the session's
// datagram-sized buffers.
func TestTUNWriterRoomToCoalesce(t *testing.T) {
	rec := &recordTUN{Device: tuntest.NewChannelTUN().TUN()}
	w := newTUNWriter(rec)
	var in [][]byte
	for i := range writeBatch + 3 {
		buf := make([]byte, masque.Headroom+100)
		for j := range buf[masque.Headroom:] {
			buf[masque.Headroom+j] = byte(i + j)
		}
		in = append(in, buf)
	}
	w.Receive(nil, in)
	if len(rec.writes) != 2 || len(rec.writes[0]) != writeBatch || len(rec.writes[1]) != 3 {
		t.Fatalf("writes of %d packets, want %d then 3", lens(rec.writes), writeBatch)
	}
	i := 0
	for _, wr := range rec.writes {
		for _, pkt := range wr {
			if !bytes.Equal(pkt, in[i][masque.Headroom:]) {
				t.Fatalf("packet %d changed: % x", i, pkt[:8])
			}
			if rec.caps[i] < 65535 {
				t.Fatalf("packet %d written from a buffer with room for %d bytes, want 65535", i, rec.caps[i])
			}
			i++
		}
	}
}

func lens(w [][][]byte) []int {
	var n []int
	for _, x := range w {
		n = append(n, len(x))
	}
	return n
}
