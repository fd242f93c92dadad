package edge

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/packettest"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// setSessionMTU sets the inner MTU of agent a's WireGuard session, as path
// MTU discovery will.
func (l *edgeLab) setSessionMTU(t *testing.T, a *agentPeer, mtu int) {
	t.Helper()
	key, err := wireguard.ParsePublicKey(a.key)
	if err != nil {
		t.Fatal(err)
	}
	l.dp.mu.Lock()
	defer l.dp.mu.Unlock()
	s := l.dp.byKey[key]
	if s == nil {
		t.Fatal("no session for the agent")
	}
	if got := s.peer.MTU(); got != DefaultMTU {
		t.Fatalf("a new WireGuard session's MTU is %d, want the edge's %d", got, DefaultMTU)
	}
	s.peer.SetMTU(mtu)
}

// TestDataplaneTooBig: site C's session carries 1280 bytes; a packet from
// site A larger than that gets ICMPv4 Fragmentation Needed (DF) or ICMPv6
// Packet Too Big back over A's session, from the edge's address, naming
// 1280, and never reaches C; IPv4 without DF reaches C in fragments.
func TestDataplaneTooBig(t *testing.T) {
	l := newEdgeLab(t)
	a := l.connector(t, "site-a", "", "10.1.0.0/16", "2001:db8:1::/48")
	c := l.connector(t, "site-c", "", "10.3.0.0/16", "2001:db8:3::/48")
	for _, p := range []*agentPeer{a, c} {
		p.send(t, ping("100.96.0.1", "10.255.255.254"))
	}
	l.waitUp(t, 2)
	for _, p := range []*agentPeer{a, c} { // the heartbeat answers
		for p.recv(200*time.Millisecond) != nil {
		}
	}
	l.setSessionMTU(t, c, 1280)
	mk := func(src, dst string, df bool) []byte {
		hdr := 28
		if netip.MustParseAddr(src).Is6() {
			hdr = 48
		}
		return packettest.UDP(packettest.IP{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), DF: df}, 4000, 5000, packettest.Fill(1400-hdr))
	}

	for _, tc := range []struct {
		name     string
		pkt      []byte
		from     string // the edge's address
		typ, off int    // ICMP type, offset of the MTU in the reply
	}{
		{"IPv4 with DF", mk("10.1.2.3", "10.3.0.5", true), model.EdgeAddress(model.DefaultOverlayRange).String(), 3, 26},
		{"IPv6", mk("2001:db8:1::1", "2001:db8:3::5", false), model.EdgeAddress6.String(), 2, 44},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.send(t, slices.Clone(tc.pkt))
			reply := a.recv(5 * time.Second)
			if reply == nil {
				t.Fatal("site A got no error back")
			}
			if err := packettest.Verify(reply); err != nil {
				t.Fatalf("the error: %v", err)
			}
			v6 := reply[0]>>4 == 6
			var src, dst netip.Addr
			var typ, mtu, hdr int
			if v6 {
				src, dst = netip.AddrFrom16([16]byte(reply[8:24])), netip.AddrFrom16([16]byte(reply[24:40]))
				typ, mtu, hdr = int(reply[40]), int(binary.BigEndian.Uint32(reply[44:48])), 48
			} else {
				src, dst = netip.AddrFrom4([4]byte(reply[12:16])), netip.AddrFrom4([4]byte(reply[16:20]))
				typ, mtu, hdr = int(reply[20]), int(binary.BigEndian.Uint16(reply[26:28])), 28
			}
			if src.String() != tc.from || typ != tc.typ || mtu != 1280 {
				t.Fatalf("site A got type %d naming MTU %d from %v, want type %d naming 1280 from %s", typ, mtu, src, tc.typ, tc.from)
			}
			if dst.String() != map[bool]string{false: "10.1.2.3", true: "2001:db8:1::1"}[v6] {
				t.Fatalf("the error went to %v", dst)
			}
			if len(reply) < hdr+40 || !bytes.Equal(reply[hdr+12:hdr+40], tc.pkt[12:40]) {
				t.Fatal("the error does not quote the packet")
			}
			if p := c.recv(200 * time.Millisecond); p != nil {
				t.Fatalf("site C got %d bytes over its MTU", len(p))
			}
		})
	}
	if got := l.dp.router.Stats().Dropped["too_big"]; got != 2 {
		t.Fatalf("too_big drops %d, want 2", got)
	}

	t.Run("IPv4 without DF", func(t *testing.T) {
		sent := mk("10.1.2.3", "10.3.0.5", false)
		a.send(t, slices.Clone(sent))
		var payload []byte
		for more := true; more; {
			f := c.recv(5 * time.Second)
			if f == nil {
				t.Fatalf("site C got %d bytes of fragments, then nothing", len(payload))
			}
			if err := packettest.Verify(f); err != nil || len(f) > 1280 {
				t.Fatalf("fragment of %d bytes: %v", len(f), err)
			}
			field := binary.BigEndian.Uint16(f[6:8])
			if int(field&0x1fff)*8 != len(payload) || f[8] != sent[8]-1 || !bytes.Equal(f[12:20], sent[12:20]) {
				t.Fatalf("fragment %x at offset %d, want offset %d from 10.1.2.3 to 10.3.0.5", f[:20], int(field&0x1fff)*8, len(payload))
			}
			payload = append(payload, f[20:]...)
			more = field&0x2000 != 0
		}
		if !bytes.Equal(payload, sent[20:]) {
			t.Fatal("the fragments do not reassemble to the packet sent")
		}
		if p := a.recv(200 * time.Millisecond); p != nil {
			t.Fatalf("site A got %x back", p[:min(len(p), 28)])
		}
		if got := l.dp.router.Stats().Fragmented; got != 1 {
			t.Fatalf("fragmented %d, want 1", got)
		}
	})
}
