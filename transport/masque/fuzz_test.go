package masque

import (
	"net/netip"
	"testing"

	connectip "github.com/quic-go/connect-ip-go"
	"go4.org/netipx"

	"github.com/switchyard/switchyard/internal/checksum"
)

// FuzzRestoreHop: on any bytes, restoreHop changes at most the TTL (hop
// limit) and the IPv4 checksum, raises the TTL by at most one, and keeps a
// valid IPv4 header checksum valid.
func FuzzRestoreHop(f *testing.F) {
	f.Add(ipv4(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1"), 64, 40))
	f.Add(ipv4(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1"), 255, 28))
	f.Add(append([]byte{0x60}, make([]byte, 47)...))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := append([]byte(nil), pkt...)
		restoreHop(pkt)
		for i := range pkt {
			if pkt[i] != orig[i] && !(i == 7 || i == 8 || i == 10 || i == 11) {
				t.Fatalf("byte %d changed: %x -> %x", i, orig[i], pkt[i])
			}
		}
		if len(pkt) >= 20 && pkt[0]>>4 == 4 {
			if d := int(pkt[8]) - int(orig[8]); d != 0 && d != 1 {
				t.Fatalf("TTL %d -> %d", orig[8], pkt[8])
			}
			if ihl := int(pkt[0]&0x0f) * 4; ihl == 20 && headerSum(orig[:20]) == 0xffff && headerSum(pkt[:20]) != 0xffff {
				t.Fatalf("checksum broken: % x -> % x", orig[:20], pkt[:20])
			}
		}
	})
}

func headerSum(h []byte) uint16 { return checksum.Fold(checksum.Sum(h, 0)) }

// FuzzFromRoutes: the prefixes of an advertised range cover exactly that
// range (the peer chooses the ranges).
func FuzzFromRoutes(f *testing.F) {
	f.Add([]byte{192, 0, 2, 0}, []byte{192, 0, 2, 255})
	f.Add([]byte{0, 0, 0, 0}, []byte{255, 255, 255, 255})
	f.Add(make([]byte, 16), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, from, to []byte) {
		start, ok1 := netip.AddrFromSlice(from)
		end, ok2 := netip.AddrFromSlice(to)
		if !ok1 || !ok2 || start.Is4() != end.Is4() || end.Less(start) {
			return
		}
		var b netipx.IPSetBuilder
		for _, p := range fromRoutes([]connectip.IPRoute{{StartIP: start, EndIP: end}}) {
			b.AddPrefix(p)
		}
		set, _ := b.IPSet()
		want := netipx.IPRangeFrom(start, end)
		if r := set.Ranges(); len(r) != 1 || r[0] != want {
			t.Fatalf("range %s gave prefixes covering %v", want, r)
		}
	})
}
