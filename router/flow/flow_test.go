package flow

import (
	"net/netip"
	"testing"
	"time"
)

// pa and pb are the two ends of the test flows; pc is a third party.
var pa, pb, pc = Party{Kind: 1, ID: [16]byte{0xa}}, Party{Kind: 1, ID: [16]byte{0xb}}, Party{Kind: 2, ID: [16]byte{0xa}}

func key(src string, sport uint16, dst string, dport uint16) Key {
	return Key{VNet: 1, Proto: 6, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: sport, DstPort: dport}
}

func TestBothDirections(t *testing.T) {
	tb := New(Config[string]{})
	k := key("100.96.0.7", 40000, "192.0.2.7", 443)
	if _, _, found := tb.Packet(k, pa, pb, 60, 1, false); found {
		t.Fatal("found a flow in an empty table")
	}
	v := Verdict{Allow: true, Gen: 3}
	if got, created := tb.Insert(k, pa, pb, "alice", v, 60, 1); !created || got != v {
		t.Fatalf("Insert = %+v, %v", got, created)
	}
	if got, reply, found := tb.Packet(k.Reverse(), pb, pa, 40, 2, false); !found || !reply || got != v {
		t.Fatalf("reply: %+v reply=%v found=%v", got, reply, found)
	}
	if _, reply, _ := tb.Packet(k, pa, pb, 100, 3, false); reply {
		t.Fatal("a packet in the first direction counted as a reply")
	}
	if _, _, found := tb.Packet(key("100.96.0.7", 40001, "192.0.2.7", 443), pa, pb, 1, 3, false); found {
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
	tb.Insert(est, pa, pb, 0, Verdict{}, 1, 0)
	tb.Packet(est.Reverse(), pb, pa, 1, 0, false)
	tb.Insert(emb, pa, pb, 0, Verdict{}, 1, 0)
	tb.Insert(closing, pa, pb, 0, Verdict{}, 1, 0)
	tb.Packet(closing.Reverse(), pb, pa, 1, 0, true)
	if n := tb.Expire(int64(8*time.Nanosecond), false); n != 1 {
		t.Fatalf("at 8ns expired %d, want the closing flow", n)
	}
	if n := tb.Expire(int64(50*time.Nanosecond), false); n != 1 {
		t.Fatalf("at 50ns expired %d, want the embryonic flow", n)
	}
	if _, _, found := tb.Packet(est, pa, pb, 1, 50, false); !found {
		t.Fatal("the established flow expired early")
	}
}

func TestFloodEvictsNewFlowsFirst(t *testing.T) {
	const max = numShards * 4
	tb := New(Config[int]{Max: max})
	var established []Key
	for i := range max / 2 {
		k := key("10.0.0.1", uint16(1000+i), "10.0.0.2", 80)
		tb.Insert(k, pa, pb, i, Verdict{Allow: true}, 1, 0)
		tb.Packet(k.Reverse(), pb, pa, 1, 0, false)
		established = append(established, k)
	}
	for i := range 100 * max { // a flood of flows that never see a reply
		tb.Insert(key("198.51.100.1", uint16(i), "10.0.0.2", uint16(i>>16)+1), pa, pb, i, Verdict{Allow: true}, 1, 1)
	}
	if tb.Len() > max {
		t.Fatalf("%d flows in a table of %d", tb.Len(), max)
	}
	if tb.Evictions() == 0 {
		t.Fatal("no evictions counted")
	}
	lost := 0
	for _, k := range established {
		if _, _, found := tb.Packet(k, pa, pb, 1, 2, false); !found {
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
	tb.Insert(k, pa, pb, 1, Verdict{Allow: true}, 60, 1)
	r := k.Reverse()
	if allocs := testing.AllocsPerRun(1000, func() {
		tb.Packet(k, pa, pb, 60, 2, false)
		tb.Packet(r, pb, pa, 60, 2, false)
	}); allocs != 0 {
		t.Fatalf("Packet allocates %.1f times, want 0", allocs)
	}
}

func BenchmarkPacket(b *testing.B) {
	tb := New(Config[int]{})
	for i := range 10000 {
		tb.Insert(key("10.0.0.1", uint16(i), "10.0.0.2", 80), pa, pb, i, Verdict{Allow: true}, 1, 1)
	}
	k := key("10.0.0.1", 4242, "10.0.0.2", 80)
	b.ReportAllocs()
	for b.Loop() {
		tb.Packet(k, pa, pb, 1500, 2, false)
	}
}

// TestParties checks that a packet with a flow's key belongs to the flow
// only between the flow's two parties, each in its own direction; any other
// packet with the key is another flow's, and leaves the first as it was.
func TestParties(t *testing.T) {
	k := key("10.0.0.1", 40000, "10.0.0.2", 443)
	tests := []struct {
		name     string
		k        Key
		from, to Party
		theFlows bool // the packet belongs to the flow
		reply    bool
	}{
		{"initiator to responder", k, pa, pb, true, false},
		{"responder back to initiator", k.Reverse(), pb, pa, true, true},
		{"another sender, first direction", k, pc, pb, false, false},
		{"another receiver, first direction", k, pa, pc, false, false},
		{"another sender, reply direction", k.Reverse(), pc, pa, false, false},
		{"another receiver, reply direction", k.Reverse(), pb, pc, false, false},
		{"the initiator, reply direction", k.Reverse(), pa, pb, false, false},
		{"the responder, first direction", k, pb, pa, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := New(Config[string]{})
			v := Verdict{Allow: true, Gen: 1}
			tb.Insert(k, pa, pb, "a", v, 60, 1)
			before := tb.Snapshot(nil)[0]

			got, reply, found := tb.Packet(tc.k, tc.from, tc.to, 40, 2, true)
			if found != tc.theFlows || reply != tc.reply {
				t.Fatalf("Packet found %v reply %v, want %v %v", found, reply, tc.theFlows, tc.reply)
			}
			_, looked := tb.Lookup(tc.k, tc.from, tc.to)
			meta, metaOK := tb.Meta(tc.k, tc.from, tc.to)
			if tc.theFlows {
				if got != v || !looked || !metaOK || meta != "a" {
					t.Fatalf("the flow's own packet: verdict %+v, Lookup %v, Meta %q %v", got, looked, meta, metaOK)
				}
				return
			}
			if looked || metaOK {
				t.Fatalf("another party's packet saw the flow: Lookup %v, Meta %v", looked, metaOK)
			}
			tb.Redecide(tc.k, tc.from, tc.to, Verdict{Gen: 2})
			if got, created := tb.Insert(tc.k, tc.from, tc.to, "c", Verdict{Gen: 9}, 40, 3); !created || got != (Verdict{Gen: 9}) {
				t.Fatalf("Insert = %+v created %v, want a flow of its own", got, created)
			}
			if got, reply, found := tb.Packet(tc.k.Reverse(), tc.to, tc.from, 40, 4, false); !found || !reply || got != (Verdict{Gen: 9}) {
				t.Fatalf("the reply of the other party's flow: %+v reply %v found %v", got, reply, found)
			}
			var after []Entry[string]
			for _, e := range tb.Snapshot(nil) {
				if e.Meta == "a" {
					after = append(after, e)
				}
			}
			if tb.Len() != 2 || len(after) != 1 || after[0] != before {
				t.Fatalf("another party's packets changed the flow (%d flows):\n%+v\nwas\n%+v", tb.Len(), after, before)
			}
		})
	}
}

// TestTwins keeps several flows with one key between different parties, and
// ends each on its own: expiry and eviction take out only the flow they
// pick, and the others stay found.
func TestTwins(t *testing.T) {
	k := key("10.0.0.1", 40000, "10.0.0.2", 443)
	parties := []Party{pa, pc, {Kind: 3, ID: [16]byte{0xd}}}
	tests := []struct {
		name string
		end  func(tb *Table[string]) int // ends some flows, returns how many
		gone []bool                      // by party
	}{
		{"the first of three expires", func(tb *Table[string]) int { return tb.Expire(int64(31*time.Second), false) }, []bool{true, false, false}},
		{"every flow is flushed", func(tb *Table[string]) int { return tb.Expire(0, true) }, []bool{true, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := New(Config[string]{})
			for i, p := range parties {
				tb.Insert(k, p, pb, "m", Verdict{Gen: uint64(i)}, 1, 0)
			}
			// All but the first see a reply and live longer.
			for _, p := range parties[1:] {
				tb.Packet(k.Reverse(), pb, p, 1, int64(30*time.Second), false)
			}
			if tb.Len() != 3 {
				t.Fatalf("%d flows, want 3", tb.Len())
			}
			want := 0
			for _, g := range tc.gone {
				if g {
					want++
				}
			}
			if n := tc.end(tb); n != want || tb.Len() != 3-want {
				t.Fatalf("ended %d, %d left; want %d ended", n, tb.Len(), want)
			}
			for i, p := range parties {
				v, found := tb.Lookup(k, p, pb)
				if found == tc.gone[i] || (found && v.Gen != uint64(i)) {
					t.Fatalf("party %d: found %v verdict %+v, want gone=%v", i, found, v, tc.gone[i])
				}
			}
		})
	}

	// A full shard evicts a twin without losing the others.
	tb := New(Config[string]{Max: numShards * 2})
	for _, p := range parties[:2] {
		tb.Insert(k, p, pb, "", Verdict{}, 1, 0)
	}
	tb.Packet(k.Reverse(), pb, pc, 1, 0, false) // pc's flow is established: pa's goes first
	tb.Insert(k, parties[2], pb, "", Verdict{}, 1, 0)
	if _, found := tb.Lookup(k, pa, pb); found || tb.Evictions() != 1 {
		t.Fatalf("pa's embryonic flow found %v after %d evictions, want it evicted", found, tb.Evictions())
	}
	for _, p := range parties[1:] {
		if _, found := tb.Lookup(k, p, pb); !found {
			t.Fatalf("the flow of %+v was lost with its evicted twin", p)
		}
	}
	if n := len(tb.Snapshot(nil)); n != 2 {
		t.Fatalf("Snapshot lists %d flows, want 2", n)
	}
}
