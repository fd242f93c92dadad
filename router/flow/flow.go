// Package flow is the edge's bounded flow table: one entry per flow, keyed by
// (virtual network, protocol, addresses, ports) and the two parties at its
// ends, in either direction, holding the policy decision taken on its first
// packet and its counters. Looking up an established flow takes one shard
// lock and does not allocate. When a shard is full, flows that never saw a
// reply are evicted before established ones, so a flood of new flows cannot
// push out working connections.
//
// It imports the standard library only.
package flow

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Key identifies a flow in the direction of its first packet.
type Key struct {
	VNet             uint32
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// Reverse returns the key of the reply direction.
func (k Key) Reverse() Key {
	return Key{VNet: k.VNet, Proto: k.Proto, Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort}
}

// canonical orders the endpoints so both directions share one map key; it
// reports whether k was reversed.
func (k Key) canonical() (Key, bool) {
	c := k.Src.Compare(k.Dst)
	if c > 0 || (c == 0 && k.SrcPort > k.DstPort) {
		return k.Reverse(), true
	}
	return k, false
}

// Party identifies one end of a flow, as the table's owner defines identity
// (the router: a tunnel, or a device); the table only compares parties. A
// flow is its key between two parties: a packet with the same key between
// other parties belongs to another flow, so it never takes the first one's
// verdict, nor counts on or changes it.
type Party struct {
	ID   [16]byte
	Kind uint32
}

// same reports whether p and q are one party; unlike == on the struct, which
// may call into the runtime, it compiles to a few loads.
func (p Party) same(q Party) bool { return p.ID == q.ID && p.Kind == q.Kind }

// ends returns the parties of a packet from one party to another whose key
// goes against the canonical order if rev, in canonical order: first the one
// that sends from the canonical key's source.
func ends(from, to Party, rev bool) [2]Party {
	if rev {
		return [2]Party{to, from}
	}
	return [2]Party{from, to}
}

// Verdict is the policy decision a flow carries.
type Verdict struct {
	Allow  bool
	Silent bool
	Policy [16]byte // the deciding policy; zero for the default action
	Gen    uint64   // the rule set generation that decided
}

// End says why a flow ended.
type End uint8

// Reasons a flow ends.
const (
	Expired End = iota // idle past its timeout
	Evicted            // pushed out by a new flow in a full table
	Flushed            // the table was flushed
)

// String names the reason, as flow logs do.
func (e End) String() string {
	switch e {
	case Evicted:
		return "evicted"
	case Flushed:
		return "flushed"
	}
	return "expired"
}

// Entry is one flow. Fields are read by the table's owner only after the
// entry left the table (in an OnEnd callback) or through Snapshot.
type Entry[M any] struct {
	Key     Key // direction of the first packet
	Meta    M   // what the creator attached (e.g. the initiating peer)
	Verdict Verdict
	Start   int64     // unix nanoseconds of the first packet
	Last    int64     // unix nanoseconds of the latest packet
	Packets [2]uint64 // [0] in the first packet's direction, [1] replies
	Bytes   [2]uint64
	Replied bool // a reply was seen: the flow is established
	Closing bool // a TCP FIN or RST was seen

	ends       [2]Party // its parties in canonical order (see ends)
	reversed   bool     // Key is the reverse of its canonical form
	prev, next *Entry[M]
	list       *list[M]
	// twin is the next flow with the same canonical key between other
	// parties. There is rarely one: it takes a site whose routes cover
	// another's sources, or a source that moved to another tunnel.
	twin *Entry[M]
}

// Timeouts are the idle timeouts per protocol and state.
type Timeouts struct {
	TCPEstablished, TCPEmbryonic, TCPClosing time.Duration
	UDP, UDPEmbryonic                        time.Duration
	Other                                    time.Duration // ICMP and anything else
}

// DefaultTimeouts are conntrack-like idle timeouts.
var DefaultTimeouts = Timeouts{
	TCPEstablished: 30 * time.Minute, TCPEmbryonic: 30 * time.Second, TCPClosing: 10 * time.Second,
	UDP: 2 * time.Minute, UDPEmbryonic: 30 * time.Second, Other: 30 * time.Second,
}

const numShards = 64

// Table is a bounded, sharded flow table; safe for concurrent use.
type Table[M any] struct {
	shards    [numShards]shard[M]
	perShard  int
	timeouts  Timeouts
	onEnd     func(*Entry[M], End)
	size      atomic.Int64
	evictions atomic.Uint64
}

type shard[M any] struct {
	mu sync.Mutex
	m  map[Key]*Entry[M] // by canonical key; twins chained from the first
	n  int               // flows, twins included
	// embryonic holds flows without a reply, oldest first; established holds
	// the others, least recently used first.
	embryonic, established list[M]
}

// Config configures a Table.
type Config[M any] struct {
	// Max bounds the number of flows; 0 means 1<<18.
	Max int
	// Timeouts are the idle timeouts; zero means DefaultTimeouts.
	Timeouts Timeouts
	// OnEnd, if set, is called with every flow that leaves the table, after it
	// left and outside any lock; it must not block for long.
	OnEnd func(*Entry[M], End)
}

// New returns an empty table.
func New[M any](cfg Config[M]) *Table[M] {
	if cfg.Max <= 0 {
		cfg.Max = 1 << 18
	}
	if cfg.Timeouts == (Timeouts{}) {
		cfg.Timeouts = DefaultTimeouts
	}
	t := &Table[M]{perShard: max(1, cfg.Max/numShards), timeouts: cfg.Timeouts, onEnd: cfg.OnEnd}
	for i := range t.shards {
		t.shards[i].m = map[Key]*Entry[M]{}
	}
	return t
}

// Len returns the number of flows in the table.
func (t *Table[M]) Len() int { return int(t.size.Load()) }

// Evictions returns how many flows were evicted to make room.
func (t *Table[M]) Evictions() uint64 { return t.evictions.Load() }

func (t *Table[M]) shard(k Key) *shard[M] {
	a, b := k.Src.As16(), k.Dst.As16()
	h := binary.LittleEndian.Uint64(a[:8]) ^ binary.LittleEndian.Uint64(b[8:])*0x9e3779b97f4a7c15
	h ^= binary.LittleEndian.Uint64(a[8:])*0xbf58476d1ce4e5b9 ^ binary.LittleEndian.Uint64(b[:8])
	h ^= uint64(k.SrcPort)<<48 | uint64(k.DstPort)<<32 | uint64(k.Proto)<<24 ^ uint64(k.VNet)
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	h ^= h >> 29
	return &t.shards[h%numShards]
}

// find returns the flow with canonical key ck between the parties of want
// (in canonical order, see ends), or nil; s is locked.
func (s *shard[M]) find(ck Key, want [2]Party) *Entry[M] {
	e := s.m[ck]
	for e != nil && !(e.ends[0].same(want[0]) && e.ends[1].same(want[1])) {
		e = e.twin
	}
	return e
}

// unlink takes e, whose canonical key is ck, out of the map; s is locked.
func (s *shard[M]) unlink(ck Key, e *Entry[M]) {
	if p := s.m[ck]; p == e {
		if e.twin == nil {
			delete(s.m, ck)
		} else {
			s.m[ck] = e.twin
		}
	} else {
		for p.twin != e {
			p = p.twin
		}
		p.twin = e.twin
	}
	e.twin = nil
	s.n--
}

// Packet counts a packet of size bytes with key k (either direction), sent
// by party from to party to, at now (unix nanoseconds) and returns its flow's
// verdict; fin marks a TCP FIN or RST. It reports found=false when no flow
// matches (a flow with key k between other parties does not), and reply=true
// when the packet goes against the flow's first direction: from the party
// the flow was opened toward back to its opener. It does not allocate.
func (t *Table[M]) Packet(k Key, from, to Party, size int, now int64, fin bool) (v Verdict, reply, found bool) {
	return t.count(k, from, to, 1, uint64(size), now, fin)
}

// Count is Packet for packets packets of bytes bytes in all that were
// forwarded on the flow's verdict already, without a FIN or RST: the flow
// cache's deferred count. It reports whether the flow was still there.
func (t *Table[M]) Count(k Key, from, to Party, packets, bytes uint64, now int64) bool {
	_, _, found := t.count(k, from, to, packets, bytes, now, false)
	return found
}

func (t *Table[M]) count(k Key, from, to Party, packets, size uint64, now int64, fin bool) (v Verdict, reply, found bool) {
	ck, rev := k.canonical()
	s := t.shard(ck)
	s.mu.Lock()
	e := s.find(ck, ends(from, to, rev))
	if e == nil {
		s.mu.Unlock()
		return Verdict{}, false, false
	}
	dir := 0
	if rev != e.reversed {
		dir = 1
	}
	e.Packets[dir] += packets
	e.Bytes[dir] += size
	e.Last = now
	e.Closing = e.Closing || fin
	if dir == 1 && !e.Replied {
		e.Replied = true
		s.embryonic.remove(e)
		s.established.pushBack(e)
	} else if e.Replied {
		s.established.moveToBack(e)
	}
	v = e.Verdict
	s.mu.Unlock()
	return v, dir == 1, true
}

// Insert adds a flow whose first packet (size bytes, key k), sent by party
// from to party to, arrived at now, with its verdict and meta. If the flow
// already exists (another goroutine won the race) it counts the packet there
// and returns that flow's verdict; flows with key k between other parties
// are left alone. A full shard evicts first a flow that never saw a reply,
// else its least recently used flow. It reports whether it created the flow.
func (t *Table[M]) Insert(k Key, from, to Party, meta M, v Verdict, size int, now int64) (Verdict, bool) {
	ck, rev := k.canonical()
	ce := ends(from, to, rev)
	s := t.shard(ck)
	s.mu.Lock()
	if e := s.find(ck, ce); e != nil {
		s.mu.Unlock()
		got, _, _ := t.Packet(k, from, to, size, now, false)
		return got, false
	}
	var evicted *Entry[M]
	if s.n >= t.perShard {
		evicted = s.embryonic.head
		if evicted == nil {
			evicted = s.established.head
		}
		evicted.list.remove(evicted)
		s.unlink(evicted.canonicalKey(), evicted)
		t.evictions.Add(1)
		t.size.Add(-1)
	}
	e := &Entry[M]{Key: k, Meta: meta, Verdict: v, Start: now, Last: now, ends: ce, reversed: rev}
	e.Packets[0], e.Bytes[0] = 1, uint64(size)
	e.twin = s.m[ck]
	s.m[ck] = e
	s.n++
	s.embryonic.pushBack(e)
	t.size.Add(1)
	s.mu.Unlock()
	if evicted != nil && t.onEnd != nil {
		t.onEnd(evicted, Evicted)
	}
	return v, true
}

func (e *Entry[M]) canonicalKey() Key { k, _ := e.Key.canonical(); return k }

// Lookup returns the verdict of the flow of a packet with key k (either
// direction) from party from to party to, as Packet finds it, without
// counting a packet.
func (t *Table[M]) Lookup(k Key, from, to Party) (Verdict, bool) {
	ck, rev := k.canonical()
	s := t.shard(ck)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.find(ck, ends(from, to, rev)); e != nil {
		return e.Verdict, true
	}
	return Verdict{}, false
}

// Redecide replaces the verdict of the flow of k between from and to, after
// a rule change.
func (t *Table[M]) Redecide(k Key, from, to Party, v Verdict) {
	ck, rev := k.canonical()
	s := t.shard(ck)
	s.mu.Lock()
	if e := s.find(ck, ends(from, to, rev)); e != nil {
		e.Verdict = v
	}
	s.mu.Unlock()
}

// Meta returns the meta of the flow of k between from and to.
func (t *Table[M]) Meta(k Key, from, to Party) (meta M, ok bool) {
	ck, rev := k.canonical()
	s := t.shard(ck)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.find(ck, ends(from, to, rev)); e != nil {
		return e.Meta, true
	}
	return meta, false
}

// timeout returns how long e may stay idle.
func (t *Table[M]) timeout(e *Entry[M]) time.Duration {
	switch {
	case e.Key.Proto == 6 && e.Closing:
		return t.timeouts.TCPClosing
	case e.Key.Proto == 6 && e.Replied:
		return t.timeouts.TCPEstablished
	case e.Key.Proto == 6:
		return t.timeouts.TCPEmbryonic
	case e.Key.Proto == 17 && e.Replied:
		return t.timeouts.UDP
	case e.Key.Proto == 17:
		return t.timeouts.UDPEmbryonic
	}
	return t.timeouts.Other
}

// Expire removes the flows idle past their timeout at now (unix
// nanoseconds), or every flow if all, and hands each to OnEnd. It returns
// the number removed.
func (t *Table[M]) Expire(now int64, all bool) int {
	var gone []*Entry[M]
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for ck, first := range s.m {
			for e := first; e != nil; {
				next := e.twin
				if all || time.Duration(now-e.Last) > t.timeout(e) {
					e.list.remove(e)
					s.unlink(ck, e) // replaces or deletes only ck: safe while ranging
					gone = append(gone, e)
				}
				e = next
			}
		}
		s.mu.Unlock()
	}
	t.size.Add(-int64(len(gone)))
	if t.onEnd != nil {
		why := Expired
		if all {
			why = Flushed
		}
		for _, e := range gone {
			t.onEnd(e, why)
		}
	}
	return len(gone)
}

// Snapshot returns copies of the flows for which keep returns true.
func (t *Table[M]) Snapshot(keep func(*Entry[M]) bool) []Entry[M] {
	var out []Entry[M]
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, first := range s.m {
			for e := first; e != nil; e = e.twin {
				if keep == nil || keep(e) {
					c := *e
					c.prev, c.next, c.list, c.twin, c.reversed = nil, nil, nil, nil, false
					out = append(out, c)
				}
			}
		}
		s.mu.Unlock()
	}
	return out
}

// list is an intrusive doubly linked list of entries.
type list[M any] struct {
	head, tail *Entry[M]
}

func (l *list[M]) pushBack(e *Entry[M]) {
	e.list, e.prev, e.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *list[M]) remove(e *Entry[M]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next, e.list = nil, nil, nil
}

func (l *list[M]) moveToBack(e *Entry[M]) {
	if l.tail == e {
		return
	}
	l.remove(e)
	l.pushBack(e)
}
