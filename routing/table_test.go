package routing

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// naive is the reference: a linear scan for the longest containing prefix.
type naive map[netip.Prefix]int

func (n naive) lookup(ip netip.Addr) (netip.Prefix, int, bool) {
	best, ok := netip.Prefix{}, false
	for p := range n {
		if p.Contains(ip) && (!ok || p.Bits() > best.Bits()) {
			best, ok = p, true
		}
	}
	return best, n[best], ok
}

func randAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(4)) // few distinct bytes, so prefixes nest often
		}
		b[0] = 0x20
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(8)), byte(r.IntN(256))})
}

func TestTableMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, v6 := range []bool{false, true} {
		var tbl Table[int]
		ref := naive{}
		maxBits := 32
		if v6 {
			maxBits = 128
		}
		for i := 0; i < 2000; i++ {
			p := netip.PrefixFrom(randAddr(r, v6), r.IntN(maxBits+1)).Masked()
			if r.IntN(5) == 0 {
				tbl.Delete(p)
				delete(ref, p)
				continue
			}
			tbl.Insert(p, i)
			ref[p] = i
		}
		if tbl.Len() != len(ref) {
			t.Fatalf("v6=%v: table has %d prefixes, reference %d", v6, tbl.Len(), len(ref))
		}
		for i := 0; i < 20000; i++ {
			ip := randAddr(r, v6)
			wantP, want, wantOK := ref.lookup(ip)
			got, ok := tbl.Lookup(ip)
			gotP, _, _ := tbl.LookupPrefix(ip)
			if ok != wantOK || got != want || (ok && gotP != wantP) {
				t.Fatalf("lookup %s: got %v %d %v, want %v %d %v", ip, gotP, got, ok, wantP, want, wantOK)
			}
		}
	}
}

func TestTableBasics(t *testing.T) {
	var tbl Table[string]
	tbl.Insert(netip.MustParsePrefix("192.0.2.0/24"), "wide")
	tbl.Insert(netip.MustParsePrefix("192.0.2.128/25"), "narrow")
	tbl.Insert(netip.MustParsePrefix("2001:db8::/32"), "v6")
	tests := []struct {
		ip   string
		want string
		ok   bool
	}{
		{"192.0.2.1", "wide", true},
		{"192.0.2.200", "narrow", true},
		{"::ffff:192.0.2.200", "narrow", true},
		{"198.51.100.1", "", false},
		{"2001:db8::1", "v6", true},
		{"2001:db9::1", "", false},
	}
	for _, tc := range tests {
		got, ok := tbl.Lookup(netip.MustParseAddr(tc.ip))
		if got != tc.want || ok != tc.ok {
			t.Errorf("Lookup(%s) = %q, %v; want %q, %v", tc.ip, got, ok, tc.want, tc.ok)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	var tbl Table[int]
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 10000; i++ {
		tbl.Insert(netip.PrefixFrom(randAddr(r, false), 8+r.IntN(25)), i)
	}
	ip := netip.MustParseAddr("10.1.2.3")
	b.ReportAllocs()
	for b.Loop() {
		tbl.Lookup(ip)
	}
}
