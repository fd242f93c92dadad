package packettest

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

var (
	src4 = netip.MustParseAddr("192.0.2.1")
	dst4 = netip.MustParseAddr("198.51.100.2")
	src6 = netip.MustParseAddr("2001:db8::1")
	dst6 = netip.MustParseAddr("2001:db8:1::2")
)

// TestGolden compares the builders with packets assembled and checksummed
// independently (Python's struct module and an RFC 1071 sum).
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"ipv4 udp df", UDP(IP{Src: src4, Dst: dst4, DF: true}, 40000, 53, []byte("hello")),
			"450000210000400040114e95c0000201c63364029c400035000d335568656c6c6f"},
		{"ipv6 tcp syn mss", TCP(IP{Src: src6, Dst: dst6}, TCPHeader{SrcPort: 40000, DstPort: 443, Seq: 1, Flags: SYN, Window: 64240, Options: MSS(1440)}, nil),
			"600000000018064020010db800000000000000000000000120010db80001000000000000000000029c4001bb00000001000000006002faf0a3d70000020405a0"},
		{"ipv6 echo hop limit", Echo(IP{Src: src6, Dst: dst6, TTL: 9}, 7, 1, []byte("ping")),
			"60000000000c3a0920010db800000000000000000000000120010db80001000000000000000000028000456a0007000170696e67"},
		{"ipv4 echo", Echo(IP{Src: src4, Dst: dst4}, 7, 1, []byte("ping")),
			"450000200000000040018ea6c0000201c6336402080019270007000170696e67"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(tt.got); got != tt.want {
				t.Fatalf("built\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestVerify checks that every built packet verifies and that changing any
// byte a checksum covers makes Verify fail.
func TestVerify(t *testing.T) {
	hopByHop := []byte{ProtoTCP, 0, 1, 4, 0, 0, 0, 0} // PadN option
	tests := []struct {
		name string
		pkt  []byte
	}{
		{"ipv4 udp", UDP(IP{Src: src4, Dst: dst4}, 1000, 2000, Fill(100))},
		{"ipv4 udp odd payload", UDP(IP{Src: src4, Dst: dst4, TTL: 1}, 1000, 2000, Fill(7))},
		{"ipv4 tcp options", TCP(IP{Src: src4, Dst: dst4, Options: []byte{1, 1, 1, 0}}, TCPHeader{SrcPort: 1, DstPort: 2, Flags: SYN | ACK, Options: []byte{1, 2, 4, 5, 180}}, Fill(33))},
		{"ipv4 echo", Echo(IP{Src: src4, Dst: dst4}, 1, 2, Fill(56))},
		{"ipv6 udp", UDP(IP{Src: src6, Dst: dst6}, 1000, 2000, Fill(3))},
		{"ipv6 tcp hop-by-hop", TCP(IP{Src: src6, Dst: dst6, Ext: hopByHop, ExtProto: 0}, TCPHeader{Flags: SYN, Options: MSS(1440)}, nil)},
		{"ipv6 echo", Echo(IP{Src: src6, Dst: dst6}, 1, 2, Fill(56))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Verify(tt.pkt); err != nil {
				t.Fatalf("Verify(built packet) = %v", err)
			}
			if err := Verify(append(tt.pkt, 0xee, 0xee)); err != nil {
				t.Fatalf("Verify(built packet + trailing bytes) = %v", err)
			}
			// IPv6's fixed header up to the addresses and its extension
			// headers are covered by no checksum.
			first := 0
			if tt.pkt[0]>>4 == 6 {
				first = 8
			}
			for i := first; i < len(tt.pkt); i++ {
				if tt.pkt[0]>>4 == 6 && tt.pkt[6] == 0 && i >= 40 && i < 48 {
					continue
				}
				bad := append([]byte(nil), tt.pkt...)
				bad[i] ^= 0x5a
				if Verify(bad) == nil {
					t.Fatalf("Verify accepted the packet with byte %d changed", i)
				}
			}
		})
	}
}

func TestVerifyFaults(t *testing.T) {
	noUDPChecksum := UDP(IP{Src: src4, Dst: dst4}, 1, 2, nil)
	noUDPChecksum[26], noUDPChecksum[27] = 0, 0
	tests := []struct {
		name string
		pkt  []byte
		want string // in the error
	}{
		{"empty", nil, "empty"},
		{"version", []byte{0x50}, "version 5"},
		{"short ipv4", []byte{0x45, 0, 0}, "shorter than a header"},
		{"truncated", UDP(IP{Src: src4, Dst: dst4}, 1, 2, Fill(10))[:30], "total length"},
		{"no udp checksum", noUDPChecksum, "no checksum"},
		{"truncated ipv6", TCP(IP{Src: src6, Dst: dst6}, TCPHeader{}, nil)[:50], "payload length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Verify(tt.pkt); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestFragmentsSkipTransport(t *testing.T) {
	for _, ip := range []IP{
		{Src: src4, Dst: dst4, MF: true},
		{Src: src4, Dst: dst4, FragOffset: 1},
	} {
		pkt := UDP(ip, 1, 2, Fill(16))
		pkt[len(pkt)-1] ^= 0xff // the transport checksum is now wrong
		if err := Verify(pkt); err != nil {
			t.Errorf("Verify(fragment %+v) = %v, want nil: a fragment's transport is not checked", ip, err)
		}
	}
	pkt := UDP(IP{Src: src4, Dst: dst4, DF: true}, 1, 2, nil)
	if pkt[6] != 0x40 || pkt[7] != 0 {
		t.Fatalf("DF: flags and offset % x, want 40 00", pkt[6:8])
	}
}
