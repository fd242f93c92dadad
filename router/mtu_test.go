package router

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/internal/packettest"
)

// big builds an IP/UDP packet of exactly size bytes from src to dst.
func big(src, dst string, size int, df bool) []byte {
	hdr := 28
	if mpa(src).Is6() {
		hdr = 48
	}
	return packettest.UDP(packettest.IP{Src: mpa(src), Dst: mpa(dst), DF: df}, 4000, 5000, packettest.Fill(size-hdr))
}

// echoDF builds an ICMP echo request of size bytes with DF, as ping -M do sends.
func echoDF(src, dst string, size int) []byte {
	return packettest.Echo(packettest.IP{Src: mpa(src), Dst: mpa(dst), DF: true}, 7, 1, packettest.Fill(size-28))
}

// unreachDF builds an ICMPv4 destination unreachable error of size bytes with DF.
func unreachDF(src, dst string, size int) []byte {
	p := echoDF(src, dst, size)
	p[20] = 3 // type: destination unreachable; the checksum no longer matters
	return p
}

// TestTooBig sends packets larger than the destination session's MTU: IPv4
// with DF and IPv6 get an error naming the MTU from the edge's own address,
// quoting the original; IPv4 without DF is fragmented; errors are never
// answered with errors.
func TestTooBig(t *testing.T) {
	const mtu = 1280
	ptb6 := slices.Clone(big("2001:db8:1::1", "2001:db8:3::5", 1400, false))
	ptb6[6], ptb6[40] = 58, 2 // an ICMPv6 packet too big, itself too big
	tests := []struct {
		name    string
		pkt     []byte
		verdict Verdict
		typ     uint8 // ICMP type and code of the reply
		code    uint8
	}{
		{"IPv4 DF at the MTU", big("10.1.2.3", "10.3.0.5", mtu, true), Forward, 0, 0},
		{"IPv4 DF over the MTU", big("10.1.2.3", "10.3.0.5", mtu+1, true), Reply, 3, 4},
		{"IPv4 echo with DF (ping -M do)", echoDF("10.1.2.3", "10.3.0.5", 1400), Reply, 3, 4},
		{"IPv4 without DF over the MTU", big("10.1.2.3", "10.3.0.5", 1400, false), ForwardFragments, 0, 0},
		{"IPv6 at the MTU", big("2001:db8:1::1", "2001:db8:3::5", mtu, false), Forward, 0, 0},
		{"IPv6 over the MTU", big("2001:db8:1::1", "2001:db8:3::5", 1400, false), Reply, 2, 0},
		{"an ICMPv4 error with DF over the MTU", unreachDF("10.1.2.3", "10.3.0.5", 1400), Drop, 0, 0},
		{"an ICMPv6 error over the MTU", ptb6, Drop, 0, 0},
	}
	l := newLab(t)
	l.siteC.SetMTU(mtu)
	icmp := make([]byte, IcmpBufSize)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := slices.Clone(tc.pkt)
			before := l.r.Dropped(ReasonTooBig)
			d := l.r.Route(l.siteA, tc.pkt, icmp)
			if d.Verdict != tc.verdict {
				t.Fatalf("Route = verdict %d (reason %v), want %d", d.Verdict, d.Reason, tc.verdict)
			}
			switch d.Verdict {
			case Reply:
				if d.To != l.siteA || d.Reason != ReasonTooBig {
					t.Fatalf("reply to %v for %v, want to A for too_big", name(d.To), d.Reason)
				}
				wantTooBig(t, d.Reply, orig, tc.typ, tc.code, mtu)
			case ForwardFragments:
				if d.To != l.siteC || d.MTU != mtu || d.Len != len(orig) {
					t.Fatalf("fragments to %v of %d bytes at MTU %d, want to C, %d bytes at %d", name(d.To), d.Len, d.MTU, len(orig), mtu)
				}
				frags := fragments(t, tc.pkt[:d.Len], mtu)
				if len(frags) != 2 {
					t.Fatalf("%d fragments, want 2", len(frags))
				}
				wantReassembled(t, frags, orig)
			case Forward:
				if d.To != l.siteC {
					t.Fatalf("forwarded to %v, want C", name(d.To))
				}
			}
			if got := l.r.Dropped(ReasonTooBig) - before; (d.Verdict == Reply || d.Verdict == Drop) != (got == 1) {
				t.Fatalf("too_big counted %d times", got)
			}
		})
	}
	if got := l.r.Stats().Fragmented; got != 1 {
		t.Fatalf("Stats().Fragmented = %d, want 1", got)
	}
}

// wantTooBig checks an ICMP too-big error: from the edge's own address to
// the sender, of the type and code, naming mtu, quoting the original packet
// as it arrived, checksums valid.
func wantTooBig(t *testing.T, reply, orig []byte, typ, code uint8, mtu int) {
	t.Helper()
	if err := packettest.Verify(reply); err != nil {
		t.Fatalf("reply: %v", err)
	}
	h, _ := parse(reply)
	o, _ := parse(orig)
	src, hdr, quoteMax := mpa("100.96.0.1"), 28, 576
	if o.v6 {
		src, hdr, quoteMax = mpa("fd00:5359::1"), 48, 1280
	}
	if h.src != src || h.dst != o.src {
		t.Fatalf("reply from %v to %v, want from %v to %v", h.src, h.dst, src, o.src)
	}
	icmp := reply[hdr-8:]
	if icmp[0] != typ || icmp[1] != code {
		t.Fatalf("ICMP type %d code %d, want %d %d", icmp[0], icmp[1], typ, code)
	}
	got := int(binary.BigEndian.Uint32(icmp[4:8]))
	if !o.v6 {
		got = int(binary.BigEndian.Uint16(icmp[6:8]))
	}
	if got != mtu {
		t.Fatalf("the error names MTU %d, want %d", got, mtu)
	}
	quote := reply[hdr:]
	if len(reply) > quoteMax || len(quote) < o.ihl+8 || !bytes.Equal(quote, orig[:len(quote)]) {
		t.Fatalf("the error (%d bytes) quotes %x..., want the original's first bytes %x...", len(reply), quote[:min(len(quote), 28)], orig[:28])
	}
}

// fragments splits pkt with Fragment and checks each fragment on its own:
// at most mtu bytes, a valid header checksum, the original's fields.
func fragments(t *testing.T, pkt []byte, mtu int) [][]byte {
	t.Helper()
	var out [][]byte
	for off := 0; ; {
		buf := make([]byte, mtu)
		n, next := Fragment(buf, pkt, mtu, off)
		if n == 0 {
			t.Fatalf("Fragment at offset %d wrote nothing", off)
		}
		f := buf[:n]
		if err := packettest.Verify(f); err != nil {
			t.Fatalf("fragment at %d: %v", off, err)
		}
		if n > mtu {
			t.Fatalf("fragment of %d bytes over MTU %d", n, mtu)
		}
		if !bytes.Equal(f[4:6], pkt[4:6]) || !bytes.Equal(f[8:10], pkt[8:10]) || !bytes.Equal(f[12:20], pkt[12:20]) {
			t.Fatalf("fragment header %x, want the id, TTL, protocol and addresses of %x", f[:20], pkt[:20])
		}
		out = append(out, f)
		if next == 0 {
			return out
		}
		if next <= off || len(out) > 100 {
			t.Fatalf("next offset %d after %d", next, off)
		}
		off = next
	}
}

// wantReassembled reassembles frags (RFC 791 3.2) and compares the result
// with orig, whose TTL the router decremented: offsets in 8-byte units that
// leave no gap or overlap, MF on every fragment but the last (unless orig is
// itself a non-last fragment), the first carrying orig's header.
func wantReassembled(t *testing.T, frags [][]byte, orig []byte) {
	t.Helper()
	o, _ := parse(orig)
	ofield := binary.BigEndian.Uint16(orig[6:8])
	base := int(ofield&0x1fff) * 8
	var payload []byte
	for i, f := range frags {
		field := binary.BigEndian.Uint16(f[6:8])
		ihl := int(f[0]&0x0f) * 4
		if off := int(field&0x1fff) * 8; off != base+len(payload) {
			t.Fatalf("fragment %d at offset %d, want %d", i, off, base+len(payload))
		}
		mf, wantMF := field&0x2000 != 0, i < len(frags)-1 || ofield&0x2000 != 0
		if mf != wantMF || field&0x4000 != 0 {
			t.Fatalf("fragment %d: MF %v DF %v, want MF %v and no DF", i, mf, field&0x4000 != 0, wantMF)
		}
		if i < len(frags)-1 && (len(f)-ihl)%8 != 0 {
			t.Fatalf("fragment %d carries %d bytes, not a multiple of 8", i, len(f)-ihl)
		}
		if i == 0 && !bytes.Equal(f[20:ihl], orig[20:o.ihl]) {
			t.Fatalf("first fragment's options %x, want %x", f[20:ihl], orig[20:o.ihl])
		}
		payload = append(payload, f[ihl:]...)
	}
	if !bytes.Equal(payload, orig[o.ihl:o.length]) {
		t.Fatalf("reassembled %d bytes of payload, not the original's %d", len(payload), o.length-o.ihl)
	}
	if base == 0 && ofield&0x2000 == 0 {
		whole := slices.Concat(frags[0][:20], orig[20:o.ihl], payload)
		whole[0] = orig[0]
		binary.BigEndian.PutUint16(whole[2:4], uint16(len(whole)))
		binary.BigEndian.PutUint16(whole[6:8], 0)
		whole[10], whole[11] = 0, 0
		if err := packettest.Verify(fixChecksum(whole)); err != nil {
			t.Fatalf("reassembled packet: %v", err)
		}
	}
}

// fixChecksum recomputes an IPv4 header checksum in place.
func fixChecksum(p []byte) []byte {
	h := slices.Clone(p[:int(p[0]&0x0f)*4])
	h[10], h[11] = 0, 0
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:12], ^uint16(sum))
	return p
}

// TestFragment splits packets of several shapes: with options (a copied
// one repeats in every fragment, the others only in the first), odd sizes,
// small MTUs, and packets that are already fragments.
func TestFragment(t *testing.T) {
	// Security (type 130, copied) and record route (type 7, not copied).
	opts := []byte{130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name     string
		ip       packettest.IP
		payload  int
		mtu      int
		frags    int
		restOpts []byte // the options of every fragment but the first
	}{
		{"two fragments", packettest.IP{}, 1400, 1280, 2, nil},
		{"odd size, many fragments", packettest.IP{}, 4001, 576, 8, nil},
		{"the smallest MTU", packettest.IP{}, 100, 68, 3, nil},
		{"with options", packettest.IP{Options: opts}, 3000, 1000, 4, []byte{130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"a middle fragment", packettest.IP{MF: true, FragOffset: 100}, 2000, 1280, 2, nil},
		{"a last fragment", packettest.IP{FragOffset: 100}, 2000, 1280, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ip := tc.ip
			ip.Src, ip.Dst = mpa("192.0.2.1"), mpa("198.51.100.2")
			pkt := packettest.UDP(ip, 1, 2, packettest.Fill(tc.payload))
			binary.BigEndian.PutUint16(pkt[4:6], 0xbeef) // id
			fixChecksum(pkt)
			frags := fragments(t, pkt, tc.mtu)
			if len(frags) != tc.frags {
				t.Fatalf("%d fragments, want %d", len(frags), tc.frags)
			}
			for i, f := range frags[1:] {
				if got := f[20 : int(f[0]&0x0f)*4]; !bytes.Equal(got, tc.restOpts) {
					t.Fatalf("fragment %d's options %x, want %x", i+1, got, tc.restOpts)
				}
			}
			wantReassembled(t, frags, pkt)
		})
	}
	// Too small an MTU, an offset past the end: nothing.
	pkt := big("192.0.2.1", "198.51.100.2", 1000, false)
	if n, _ := Fragment(make([]byte, 27), pkt, 27, 0); n != 0 {
		t.Fatalf("Fragment with MTU 27 wrote %d bytes", n)
	}
	if n, _ := Fragment(make([]byte, 576), pkt, 576, 980); n != 0 {
		t.Fatalf("Fragment past the end wrote %d bytes", n)
	}
}

// TestTooBigRateLimited: the errors share the router's ICMP budget; beyond
// it the packets are dropped, still counted.
func TestTooBigRateLimited(t *testing.T) {
	l := newLab(t)
	l.r = New(Config{ICMPSource4: mpa("100.96.0.1"), ICMPRate: 3})
	l.rebuild()
	l.siteC.SetMTU(1280)
	icmp := make([]byte, IcmpBufSize)
	replies := 0
	for range 10 {
		if l.r.Route(l.siteA, big("10.1.2.3", "10.3.0.5", 1400, true), icmp).Verdict == Reply {
			replies++
		}
	}
	if replies != 3 {
		t.Fatalf("%d errors for 10 packets, want 3 (the burst)", replies)
	}
	if s := l.r.Stats(); s.Dropped["too_big"] != 10 || s.Replied != 3 {
		t.Fatalf("too_big %d, errors %d; want 10 and 3", s.Dropped["too_big"], s.Replied)
	}
}

// TestTooBigOverTrunk: a packet that came over a trunk and is too big for
// its session here is fragmented without DF, else dropped: never answered
// across the trunk.
func TestTooBigOverTrunk(t *testing.T) {
	l := newLab(t)
	l.siteC.SetMTU(1280)
	if d := l.r.RouteTrunk(0, big("10.1.2.3", "10.3.0.5", 1400, true), "edge-2", true); d.Verdict != Drop || d.Reason != ReasonTooBig {
		t.Fatalf("DF over a trunk: verdict %d reason %v, want a too_big drop", d.Verdict, d.Reason)
	}
	pkt := big("10.1.2.3", "10.3.0.5", 1400, false)
	orig := slices.Clone(pkt)
	d := l.r.RouteTrunk(0, pkt, "edge-2", true)
	if d.Verdict != ForwardFragments || d.To != l.siteC || d.MTU != 1280 {
		t.Fatalf("without DF over a trunk: verdict %d to %v MTU %d, want fragments to C at 1280", d.Verdict, name(d.To), d.MTU)
	}
	if !bytes.Equal(pkt, orig) {
		t.Fatal("RouteTrunk changed the packet (the ingress edge counted the hop)")
	}
	orig[8]++ // wantReassembled expects the router's TTL decrement
	fixChecksum(orig)
	wantReassembled(t, fragments(t, pkt, 1280), orig)
}

// TestTooBigAllocs: the too-big path, errors and fragments, allocates nothing.
func TestTooBigAllocs(t *testing.T) {
	l := newLab(t)
	l.siteC.SetMTU(1280)
	icmp := make([]byte, IcmpBufSize)
	frag := make([]byte, 1280)
	df := big("10.1.2.3", "10.3.0.5", 1400, true)
	v6 := big("2001:db8:1::1", "2001:db8:3::5", 1400, false)
	nodf := big("10.1.2.3", "10.3.0.5", 1400, false)
	allocs := testing.AllocsPerRun(1000, func() {
		df[8], nodf[8] = 64, 64
		l.r.Route(l.siteA, df, icmp)
		l.r.Route(l.siteA, v6, icmp)
		d := l.r.Route(l.siteA, nodf, icmp)
		for off := 0; d.Verdict == ForwardFragments; {
			if _, off = Fragment(frag, nodf[:d.Len], d.MTU, off); off == 0 {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("the too-big path allocates %.1f times per packet, want 0", allocs)
	}
}

// TestTooBigIPv6Floor: on a session whose MTU is below 1280 (a small IPv4
// underlay) an IPv6 packet of up to 1280 bytes is forwarded (its outer
// datagram fragments), a larger one is answered naming 1280, never less;
// IPv4 keeps the session's MTU.
func TestTooBigIPv6Floor(t *testing.T) {
	const mtu = 1196
	l := newLab(t)
	l.siteC.SetMTU(mtu)
	icmp := make([]byte, IcmpBufSize)
	if d := l.r.Route(l.siteA, big("2001:db8:1::1", "2001:db8:3::5", 1280, false), icmp); d.Verdict != Forward {
		t.Fatalf("IPv6 of 1280 bytes on a %d-byte session: verdict %d (%v), want Forward", mtu, d.Verdict, d.Reason)
	}
	orig := big("2001:db8:1::1", "2001:db8:3::5", 1300, false)
	o := slices.Clone(orig)
	d := l.r.Route(l.siteA, orig, icmp)
	if d.Verdict != Reply {
		t.Fatalf("IPv6 of 1300 bytes: verdict %d, want Reply", d.Verdict)
	}
	wantTooBig(t, d.Reply, o, 2, 0, 1280)
	orig = big("10.1.2.3", "10.3.0.5", mtu+1, true)
	o = slices.Clone(orig)
	d = l.r.Route(l.siteA, orig, icmp)
	if d.Verdict != Reply {
		t.Fatalf("IPv4 DF of %d bytes: verdict %d, want Reply", mtu+1, d.Verdict)
	}
	wantTooBig(t, d.Reply, o, 3, 4, mtu)
}

// TestFragNeeded: the agent's helper answers an IPv4 DF packet over the MTU
// from the source given, and nothing else.
func TestFragNeeded(t *testing.T) {
	buf := make([]byte, IcmpBufSize)
	src := mpa("10.3.0.5")
	pkt := big("10.1.2.3", "10.3.0.5", 1300, true)
	r := FragNeeded(buf, src, pkt, 1220)
	if r == nil {
		t.Fatal("no answer to an IPv4 DF packet over the MTU")
	}
	if err := packettest.Verify(r); err != nil {
		t.Fatal(err)
	}
	h, _ := parse(r)
	if h.src != src || h.dst != mpa("10.1.2.3") || r[20] != 3 || r[21] != 4 || binary.BigEndian.Uint16(r[26:28]) != 1220 {
		t.Fatalf("answer from %v to %v type %d code %d mtu %d", h.src, h.dst, r[20], r[21], binary.BigEndian.Uint16(r[26:28]))
	}
	for name, p := range map[string][]byte{
		"at the MTU": big("10.1.2.3", "10.3.0.5", 1220, true),
		"without DF": big("10.1.2.3", "10.3.0.5", 1300, false),
		"IPv6":       big("2001:db8:1::1", "2001:db8:3::5", 1300, false),
		"an error":   unreachDF("10.1.2.3", "10.3.0.5", 1300),
	} {
		if FragNeeded(buf, src, p, 1220) != nil {
			t.Errorf("%s: answered", name)
		}
	}
}
