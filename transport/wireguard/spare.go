package wireguard

import (
	"runtime"
	"sync/atomic"
)

// fanoutMin is the smallest batch whose crypto may be split across the
// crypto workers. Waking a worker and waiting for it costs a few
// microseconds and, on a host whose cores are all busy, a context switch
// that other processes pay for too: below this size, or with no core to
// spare, the batch is sealed or opened on the goroutine that has it.
const fanoutMin = 64

// spareInterval is how long an estimate of the spare cores holds.
const spareInterval = int64(100e6) // 100 ms

// cpuSource reads the machine's CPU time counters: idle is the time all
// cores spent idle and total the time they spent at all, in any unit, both
// counting from any fixed origin. ok is false when they cannot be read.
type cpuSource interface {
	read() (idle, total uint64, ok bool)
	close()
}

// spareCPU estimates how many cores could take crypto work now: those the
// machine left idle over the last interval plus those this endpoint's crypto
// workers kept busy (which would be idle without them, so that fanning out
// does not talk itself out of fanning out). Whichever goroutine asks first
// once the estimate is stale refreshes it, so it costs no goroutine of its
// own and one read of the kernel's counters per interval.
type spareCPU struct {
	src    cpuSource // nil: no counters; assume GOMAXPROCS-1 spare cores
	cpus   int       // cores the counters cover
	cores  atomic.Int32
	stale  atomic.Int64 // endpoint time from which the estimate needs a refresh
	busy   atomic.Int64 // ns the crypto workers spent on jobs
	forced atomic.Int32 // tests: > 0 means cores is forced-1

	sampling            atomic.Bool // held by the refreshing goroutine, guards the fields below
	lastIdle, lastTotal uint64
	lastBusy, lastAt    int64
}

func (s *spareCPU) init(src cpuSource) {
	s.cpus = runtime.NumCPU()
	s.src = src
	if src == nil {
		s.cores.Store(int32(runtime.GOMAXPROCS(0) - 1))
		s.stale.Store(1<<63 - 1)
	}
}

// close releases the counters.
func (s *spareCPU) close() {
	if s.src != nil {
		s.src.close()
	}
}

// get returns the estimate of spare cores at endpoint time now.
func (s *spareCPU) get(now int64) int {
	if f := s.forced.Load(); f > 0 {
		return int(f - 1)
	}
	if now >= s.stale.Load() && s.sampling.CompareAndSwap(false, true) {
		s.refresh(now)
		s.sampling.Store(false)
	}
	return int(s.cores.Load())
}

func (s *spareCPU) refresh(now int64) {
	idle, total, ok := s.src.read()
	busy := s.busy.Load()
	s.stale.Store(now + spareInterval)
	if !ok {
		s.cores.Store(0)
		return
	}
	if s.lastAt != 0 && total > s.lastTotal && now > s.lastAt {
		spare := float64(idle-s.lastIdle) / float64(total-s.lastTotal) * float64(s.cpus)
		spare += float64(busy-s.lastBusy) / float64(now-s.lastAt)
		s.cores.Store(int32(min(spare+0.25, float64(s.cpus))))
	}
	s.lastIdle, s.lastTotal, s.lastBusy, s.lastAt = idle, total, busy, now
}
