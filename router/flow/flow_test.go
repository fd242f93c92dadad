package flow

import (
	"net/netip"
	"testing"
	"time"
)

func key(src string, sport uint16, dst string, dport uint16) Key {
	return Key{VNet: 1, Proto: 6, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: sport, DstPort: dport}
}

func TestBothDirections(t *testing.T) {
	tb := New(Config[string]{})
	k := key("100.96.0.7", 40000, "192.0.2.7", 443)
	if _, _, found := tb.Packet(k, 60, 1, false); found {
		t.Fatal("found a flow in an empty table")
	}
	v := Verdict{Allow: true, Gen: 3}
	if got, created := tb.Insert(k, "alice", v, 60, 1); !created || got != v {
		t.Fatalf("Insert = %+v, %v", got, created)
	}
	if got, reply, found := tb.Packet(k.Reverse(), 40, 2, false); !found || !reply || got != v {
		t.Fatalf("reply: %+v reply=%v found=%v", got, reply, found)
	}
	if _, reply, _ := tb.Packet(k, 100, 3, false); reply {
		t.Fatal("a packet in the first direction counted as a reply")
	}
	if _, _, found := tb.Packet(key("100.96.0.7", 40001, "192.0.2.7", 443), 1, 3, false); found {
		t.Fatal("another source port matched the flow")
	}
	var ended []Entry[string]
	tb.onEnd = func(e *Entry[string], why End) { ended = append(ended, *e) }
	if n := tb.Expire(4, true); n != 1 || tb.Len() != 0 {
		t.Fatalf("flush removed %d, %d left", n, tb.Len())
	}
	e := ended[0]
	if e.Meta != "alice" || e.Key != k || e.Packets != [2]uint64{2, 1} || e.Bytes != [2]uint64{160, 40} || e.Start != 1 || e.Last != 3 || !e.Replied {
		t.Fatalf("ended flow = %+v", e)
	}
}

func TestExpireByState(t *testing.T) {
	to := Timeouts{TCPEstablished: 100, TCPEmbryonic: 10, TCPClosing: 5, UDP: 50, UDPEmbryonic: 20, Other: 30}
	tb := New(Config[int]{Timeouts: to})
	est := key("10.0.0.1", 1, "10.0.0.2", 2)
	emb := key("10.0.0.1", 3, "10.0.0.2", 4)
	closing := key("10.0.0.1", 5, "10.0.0.2", 6)
	tb.Insert(est, 0, Verdict{}, 1, 0)
	tb.Packet(est.Reverse(), 1, 0, false)
	tb.Insert(emb, 0, Verdict{}, 1, 0)
	tb.Insert(closing, 0, Verdict{}, 1, 0)
	tb.Packet(closing.Reverse(), 1, 0, true)
	if n := tb.Expire(int64(8*time.Nanosecond), false); n != 1 {
		t.Fatalf("at 8ns expired %d, want the closing flow", n)
	}
	if n := tb.Expire(int64(50*time.Nanosecond), false); n != 1 {
		t.Fatalf("at 50ns expired %d, want the embryonic flow", n)
	}
	if _, _, found := tb.Packet(est, 1, 50, false); !found {
		t.Fatal("the established flow expired early")
	}
}

func TestFloodEvictsNewFlowsFirst(t *testing.T) {
	const max = numShards * 4
	tb := New(Config[int]{Max: max})
	var established []Key
	for i := range max / 2 {
		k := key("10.0.0.1", uint16(1000+i), "10.0.0.2", 80)
		tb.Insert(k, i, Verdict{Allow: true}, 1, 0)
		tb.Packet(k.Reverse(), 1, 0, false)
		established = append(established, k)
	}
	for i := range 100 * max { // a flood of flows that never see a reply
		tb.Insert(key("198.51.100.1", uint16(i), "10.0.0.2", uint16(i>>16)+1), i, Verdict{Allow: true}, 1, 1)
	}
	if tb.Len() > max {
		t.Fatalf("%d flows in a table of %d", tb.Len(), max)
	}
	if tb.Evictions() == 0 {
		t.Fatal("no evictions counted")
	}
	lost := 0
	for _, k := range established {
		if _, _, found := tb.Packet(k, 1, 2, false); !found {
			lost++
		}
	}
	// A shard full of established flows must evict one of them; they are
	// spread over shards, so nearly all survive.
	if lost > len(established)/10 {
		t.Fatalf("the flood evicted %d of %d established flows", lost, len(established))
	}
}

func TestEstablishedDoesNotAllocate(t *testing.T) {
	tb := New(Config[int]{})
	k := key("100.96.0.7", 40000, "192.0.2.7", 443)
	tb.Insert(k, 1, Verdict{Allow: true}, 60, 1)
	r := k.Reverse()
	if allocs := testing.AllocsPerRun(1000, func() {
		tb.Packet(k, 60, 2, false)
		tb.Packet(r, 60, 2, false)
	}); allocs != 0 {
		t.Fatalf("Packet allocates %.1f times, want 0", allocs)
	}
}

func BenchmarkPacket(b *testing.B) {
	tb := New(Config[int]{})
	for i := range 10000 {
		tb.Insert(key("10.0.0.1", uint16(i), "10.0.0.2", 80), i, Verdict{Allow: true}, 1, 1)
	}
	k := key("10.0.0.1", 4242, "10.0.0.2", 80)
	b.ReportAllocs()
	for b.Loop() {
		tb.Packet(k, 1500, 2, false)
	}
}
