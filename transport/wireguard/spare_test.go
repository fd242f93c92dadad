package wireguard

import (
	"bytes"
	"runtime"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
)

// fakeCPU replays counter readings.
type fakeCPU struct {
	idle, total []uint64
	i           int
}

func (f *fakeCPU) read() (uint64, uint64, bool) {
	if f.i >= len(f.idle) {
		return 0, 0, false
	}
	f.i++
	return f.idle[f.i-1], f.total[f.i-1], true
}

func (f *fakeCPU) close() {}

func TestSpareCPU(t *testing.T) {
	var s spareCPU
	src := &fakeCPU{
		// 4 cores: all idle, then all busy, then one and a half idle.
		idle:  []uint64{0, 400, 400, 550},
		total: []uint64{0, 400, 800, 1200},
	}
	s.init(src)
	s.cpus = 4
	now := int64(1)
	get := func() int {
		v := s.get(now)
		now += spareInterval
		return v
	}
	if got := get(); got != 0 {
		t.Errorf("before two readings: %d spare cores, want 0", got)
	}
	if got := get(); got != 4 {
		t.Errorf("all idle: %d spare cores, want 4", got)
	}
	if got := s.get(now - spareInterval + 1); got != 4 {
		t.Errorf("within the interval the estimate holds: %d, want 4", got)
	}
	s.busy.Add(spareInterval) // the workers kept one core busy
	if got := get(); got != 1 {
		t.Errorf("all busy, one core by the crypto workers: %d spare cores, want 1", got)
	}
	if got := get(); got != 1 {
		t.Errorf("1.5 cores idle: %d spare cores, want 1 (rounded down below .75)", got)
	}
	if got := get(); got != 0 {
		t.Errorf("counters unreadable: %d spare cores, want 0", got)
	}

	var none spareCPU
	none.init(nil)
	if got, want := none.get(1), runtime.GOMAXPROCS(0)-1; got != want {
		t.Errorf("without counters: %d spare cores, want GOMAXPROCS-1 = %d", got, want)
	}
}

func TestParseProcStat(t *testing.T) {
	idle, total, ok := parseProcStat([]byte("cpu  3221526 30578 600158 6663551 22896 0 44794 541464 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"))
	if !ok || idle != 6663551+22896 || total != 3221526+30578+600158+6663551+22896+44794+541464 {
		t.Errorf("parseProcStat = %d, %d, %t", idle, total, ok)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5", "cpu  1 2 x 4 5", "intr 1 2 3 4 5", "cpu  1 2 3"} {
		if _, _, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
	if src := newCPUSource(); src != nil {
		defer src.close()
		if _, total, ok := src.read(); !ok || total == 0 {
			t.Errorf("reading this machine's /proc/stat: total %d, ok %t", total, ok)
		}
	}
}

func TestParseProcStatAllocs(t *testing.T) {
	b := []byte("cpu  3221526 30578 600158 6663551 22896 0 44794 541464 0 0\n")
	if n := testing.AllocsPerRun(100, func() { parseProcStat(b) }); n != 0 {
		t.Errorf("parseProcStat allocates %.1f times", n)
	}
}

// TestFanOut seals and opens a full batch of distinct packets with the
// crypto inline and fanned out to the workers: every packet arrives, intact
// and in order, either way.
func TestFanOut(t *testing.T) {
	for _, spare := range []int{0, 1, 3} {
		var got [][]byte
		collect := ReceiverFunc(func(pkts []Packet) {
			for _, p := range pkts {
				got = append(got, append([]byte(nil), p.Data()...))
			}
		})
		a, b, ba, _, sa, _ := connectedCapPair(t, ReceiverFunc(func([]Packet) {}), collect)
		a.spare.forced.Store(int32(spare + 1))
		b.spare.forced.Store(int32(spare + 1))
		rx := b.newRxBatch(conn.IdealBatchSize)
		ba.sink = rx
		want := make([][]byte, conn.IdealBatchSize)
		bufs := make([][]byte, len(want))
		for i := range want {
			want[i] = ipv4Packet(100 + 9*i)
			want[i][len(want[i])-1] = byte(i)
			bufs[i] = append(make([]byte, Headroom, Headroom+len(want[i])+Tailroom), want[i]...)
		}
		if err := a.Send(sa, bufs, Headroom); err != nil {
			t.Fatal(err)
		}
		b.processBatch(rx, ba.sinkN)
		if len(got) != len(want) {
			t.Fatalf("%d spare cores: %d of %d packets arrived", spare, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%d spare cores: packet %d differs", spare, i)
			}
		}
	}
}
