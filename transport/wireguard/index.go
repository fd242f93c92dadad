package wireguard

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"
)

// indexEntry is what a receiver index points to: a session and, once the
// handshake is done, its keypair. Entries are immutable once published.
type indexEntry struct {
	index uint32
	sess  *Session
	kp    *keypair // nil while a handshake we initiated is pending
}

// indexTable maps receiver indices to entries without a map: the low bits
// of an index name a slot, the high bits are random, and a lookup checks
// that the slot still holds that exact index. Reads are lock-free.
type indexTable struct {
	mu    sync.Mutex
	free  []uint32 // free slot numbers
	slots []atomic.Pointer[indexEntry]
	bits  uint
	mask  uint32
}

func newIndexTable(size int) *indexTable {
	if size <= 0 {
		size = defaultMaxSessions
	}
	if size > 1<<24 {
		size = 1 << 24
	}
	b := uint(bits.Len(uint(size - 1)))
	n := 1 << b
	t := &indexTable{slots: make([]atomic.Pointer[indexEntry], n), bits: b, mask: uint32(n - 1)}
	t.free = make([]uint32, n)
	for i := range t.free {
		t.free[i] = uint32(n - 1 - i)
	}
	return t
}

// insert publishes a new entry under a fresh index and returns it; it
// returns false when the table is full. A keypair's entry is the one it
// embeds, so that an established session costs no allocation here.
func (t *indexTable) insert(sess *Session, kp *keypair) (*indexEntry, bool) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.free) == 0 {
		return nil, false
	}
	slot := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	idx := slot | binary.LittleEndian.Uint32(r[:])<<t.bits // bits <= 24
	e := entryFor(kp)
	*e = indexEntry{index: idx, sess: sess, kp: kp}
	t.slots[slot].Store(e)
	return e, true
}

// replace swaps the entry for idx to carry kp; it fails if idx is gone.
func (t *indexTable) replace(idx uint32, sess *Session, kp *keypair) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &t.slots[idx&t.mask]
	if e := s.Load(); e == nil || e.index != idx {
		return false
	}
	e := entryFor(kp)
	*e = indexEntry{index: idx, sess: sess, kp: kp}
	s.Store(e)
	return true
}

// entryFor returns the entry to publish for kp: the one kp embeds (not yet
// published: kp is new), or a new one while a handshake is pending.
func entryFor(kp *keypair) *indexEntry {
	if kp != nil {
		return &kp.ent
	}
	return new(indexEntry)
}

// lookup returns the entry for idx, or nil.
func (t *indexTable) lookup(idx uint32) *indexEntry {
	e := t.slots[idx&t.mask].Load()
	if e == nil || e.index != idx {
		return nil
	}
	return e
}

// remove frees idx if it is still in use.
func (t *indexTable) remove(idx uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &t.slots[idx&t.mask]
	if e := s.Load(); e == nil || e.index != idx {
		return
	}
	s.Store(nil)
	t.free = append(t.free, idx&t.mask)
}

// inUse returns the number of indices in use.
func (t *indexTable) inUse() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.slots) - len(t.free)
}
