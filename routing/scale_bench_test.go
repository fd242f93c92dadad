package routing

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
)

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// scalePrefix draws a prefix from a mix shaped like a large routing table:
// for IPv4 mostly /24, then /16–/23, with a few shorter and longer ones; for
// IPv6 mostly /48, then /32–/47 and /49–/64.
func scalePrefix(r *rand.Rand, v6 bool) netip.Prefix {
	var bits int
	x := r.IntN(100)
	if v6 {
		var b [16]byte
		for i := range 8 {
			b[i] = byte(r.Uint32())
		}
		b[0] = 0x20 | b[0]&0x0f // 2000::/4
		switch {
		case x < 55:
			bits = 48
		case x < 85:
			bits = 32 + r.IntN(16)
		default:
			bits = 49 + r.IntN(16)
		}
		return netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked()
	}
	var b [4]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	switch {
	case x < 60:
		bits = 24
	case x < 90:
		bits = 16 + r.IntN(8)
	case x < 95:
		bits = 8 + r.IntN(8)
	default:
		bits = 25 + r.IntN(8)
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), bits).Masked()
}

// inside returns a random address within p.
func inside(r *rand.Rand, p netip.Prefix) netip.Addr {
	a := p.Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		if r.IntN(2) == 1 {
			a[i/8] |= 0x80 >> (i % 8)
		}
	}
	ip, _ := netip.AddrFromSlice(a)
	return ip
}

// BenchmarkLookupScale is the per-packet route lookup in tables of 1k, 100k
// and 1M routes, three quarters of the destinations inside a stored prefix.
// "spread" cycles through 64k destinations, so lookups walk the table's
// memory as traffic to many sites does (mostly cache misses at 1M routes);
// "hot" cycles through 256, a few busy flows whose path stays in cache. The
// issue's target is ≤ 30 ns at 1M routes.
func BenchmarkLookupScale(b *testing.B) {
	for _, fam := range []struct {
		name string
		v6   bool
	}{{"v4", false}, {"v6", true}} {
		for _, n := range []struct {
			name string
			size int
		}{{"1k", 1_000}, {"100k", 100_000}, {"1M", 1_000_000}} {
			r := rand.New(rand.NewPCG(uint64(n.size), 7))
			var tbl Table[int]
			var stored []netip.Prefix
			var perRoute float64 // heap bytes per route
			build := func() {
				if stored != nil {
					return
				}
				stored = make([]netip.Prefix, 0, n.size)
				h0 := heapInUse()
				for tbl.Len() < n.size {
					p := scalePrefix(r, fam.v6)
					tbl.Insert(p, len(stored))
					stored = append(stored, p)
				}
				perRoute = float64(heapInUse()-h0) / float64(n.size)
			}
			for _, set := range []struct {
				name string
				size int
			}{{"spread", 1 << 16}, {"hot", 256}} {
				b.Run(fmt.Sprintf("%s/%s/%s", fam.name, n.name, set.name), func(b *testing.B) {
					build()
					addrs := make([]netip.Addr, set.size)
					for i := range addrs {
						if i%4 == 3 {
							addrs[i] = scalePrefix(r, fam.v6).Addr()
						} else {
							addrs[i] = inside(r, stored[r.IntN(len(stored))])
						}
					}
					hits := 0
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						if _, ok := tbl.Lookup(addrs[i&(len(addrs)-1)]); ok {
							hits++
						}
						i++
					}
					if hits == 0 {
						b.Fatal("no lookup matched")
					}
					b.ReportMetric(perRoute, "B/route")
				})
			}
		}
	}
}
