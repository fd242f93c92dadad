package tun

import (
	"bytes"
	"testing"
)

// FuzzClamp checks ClampMSS on arbitrary input: it never panics, changes at
// most the MSS value and the TCP checksum, never raises the MSS, and keeps a
// valid checksum valid.
func FuzzClamp(f *testing.F) {
	for _, s := range []tcpSpec{
		{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460)},
		{src: src4, dst: dst4, flags: flagSYN | flagACK, opts: append([]byte{1}, mssOpt(9000)...)},
		{src: src4, dst: dst4, flags: flagSYN, opts: mssOpt(1460), ipOpts: []byte{1, 1, 1, 0}},
		{src: src6, dst: dst6, flags: flagSYN, opts: mssOpt(1440)},
		{src: src6, dst: dst6, flags: flagSYN, opts: mssOpt(1440), ext6: []byte{protoTCP, 0, 1, 4, 0, 0, 0, 0}, ext6Next: ext6HopByHop},
		{src: src4, dst: dst4, flags: flagACK, payload: 100},
	} {
		f.Add(buildPacket(s), uint16(1380), uint16(1360))
	}
	f.Fuzz(func(t *testing.T, pkt []byte, mss4, mss6 uint16) {
		before := bytes.Clone(pkt)
		validBefore := checksumValidIfTCP(pkt)
		changed := ClampMSS(pkt, mss4, mss6)
		if !changed {
			if !bytes.Equal(before, pkt) {
				t.Fatal("packet modified although ClampMSS reported no change")
			}
			return
		}
		start, _, v6 := tcpBounds(pkt)
		limit := mss4
		if v6 {
			limit = mss6
		}
		mss := mssOffset(pkt)
		for i := range pkt {
			if pkt[i] != before[i] && i != start+16 && i != start+17 && i != mss && i != mss+1 {
				t.Fatalf("byte %d changed; only the checksum at %d and the mss at %d may", i, start+16, mss)
			}
		}
		if got := packetMSS(pkt); got != limit {
			t.Fatalf("mss after clamp = %d, want %d", got, limit)
		}
		if old := packetMSS(before); old <= limit {
			t.Fatalf("mss raised from %d to %d", old, limit)
		}
		if validBefore && !tcpChecksumValid(pkt) {
			t.Fatal("valid checksum became invalid")
		}
	})
}

// checksumValidIfTCP reports whether pkt looks like a parsable IP/TCP
// packet whose TCP checksum is valid. It is only called on input that
// ClampMSS may change, so it only needs to be exact for those.
func checksumValidIfTCP(pkt []byte) bool {
	if !ClampMSS(bytes.Clone(pkt), 0, 0) {
		return false // ClampMSS will not touch it either
	}
	// tcpBounds relies on the same parsing ClampMSS just accepted.
	_, end, _ := tcpBounds(pkt)
	return end <= len(pkt) && tcpChecksumValid(pkt)
}
