package heartbeat

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/packettest"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Type: Probe, Flags: Preferred, Priority: 200, Multiplier: 5, Interval: 100 * time.Millisecond, Seq: 7},
		{Type: Probe, Flags: Leaving, Multiplier: 3, Interval: 250 * time.Millisecond, Seq: 1<<32 - 1},
		{Type: Reply, Flags: Active, Multiplier: 5, Interval: 100 * time.Millisecond, Seq: 9},
		{Type: Reply, Flags: Active | Draining, Multiplier: 5, Interval: 100 * time.Millisecond, Seq: 10},
	} {
		b := m.Append(nil)
		if len(b) != Len {
			t.Fatalf("%+v encodes to %d bytes, want %d", m, len(b), Len)
		}
		got, err := Parse(b)
		if err != nil || got != m {
			t.Errorf("Parse(Append(%+v)) = %+v, %v", m, got, err)
		}
	}
}

// TestFlagsOnTheWire pins each flag's bit in byte 6: agents and edges of
// different versions share a cluster.
func TestFlagsOnTheWire(t *testing.T) {
	for _, c := range []struct {
		f   Flags
		bit byte
	}{{Leaving, 0x01}, {Preferred, 0x02}, {Active, 0x04}, {Standby, 0x08}, {Draining, 0x10}} {
		b := Message{Type: Reply, Flags: c.f}.Append(nil)
		if b[6] != c.bit {
			t.Errorf("flag %#x is byte 6 = %#x on the wire, want %#x", c.f, b[6], c.bit)
		}
		if m, err := Parse(b); err != nil || m.Flags != c.f {
			t.Errorf("flag %#x parses as %+v, %v", c.f, m, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := Message{Type: Probe, Multiplier: 5, Interval: 100 * time.Millisecond}.Append(nil)
	for name, mutate := range map[string]func(b []byte) []byte{
		"short":         func(b []byte) []byte { return b[:Len-1] },
		"magic":         func(b []byte) []byte { b[0] = 'X'; return b },
		"version":       func(b []byte) []byte { b[4] = 2; return b },
		"type":          func(b []byte) []byte { b[5] = 9; return b },
		"zero interval": func(b []byte) []byte { b[8], b[9] = 0, 0; return b },
		"no multiplier": func(b []byte) []byte { b[10] = 0; return b },
	} {
		if _, err := Parse(mutate(append([]byte(nil), good...))); err == nil {
			t.Errorf("%s: Parse accepted a bad message", name)
		}
	}
}

// checksumOK verifies that pkt is a UDP packet whose IPv4 header and UDP
// checksums are valid.
func checksumOK(t *testing.T, pkt []byte) {
	t.Helper()
	if _, ok := udpPayload(pkt); !ok {
		t.Fatalf("not a UDP packet: % x", pkt)
	}
	if err := packettest.Verify(pkt); err != nil {
		t.Error(err)
	}
}

func TestReplyPacket(t *testing.T) {
	for _, c := range []struct{ agent, edge string }{
		{"192.0.2.10:40000", "100.96.0.1:51821"},
		{"[2001:db8::10]:40000", "[fd00:5359:6564:6765::1]:51821"},
	} {
		agent, edge := netip.MustParseAddrPort(c.agent), netip.MustParseAddrPort(c.edge)
		probe := Message{Type: Probe, Flags: Preferred, Priority: 10, Multiplier: 5, Interval: 100 * time.Millisecond, Seq: 42}
		pkt := AppendPacket(nil, agent, edge, probe)
		checksumOK(t, pkt)
		got, ok := ParsePacket(pkt)
		if !ok || got != probe {
			t.Fatalf("ParsePacket = %+v, %v; want %+v", got, ok, probe)
		}
		reply := Message{Type: Reply, Flags: Active, Multiplier: 5, Interval: 100 * time.Millisecond, Seq: 42}
		out := AppendReply(make([]byte, 0, 64), pkt, reply)
		checksumOK(t, out)
		if _, ok := ParsePacket(out); ok {
			t.Errorf("a reply (to the agent's port) parsed as a probe")
		}
		udp, _ := udpPayload(out)
		if p := binary.BigEndian.Uint16(udp[2:4]); p != agent.Port() {
			t.Errorf("reply to port %d, want %d", p, agent.Port())
		}
		m, err := Parse(udp[8:])
		if err != nil || m != reply {
			t.Errorf("reply carries %+v, %v; want %+v", m, err, reply)
		}
		var to netip.Addr
		if agent.Addr().Is4() {
			to = netip.AddrFrom4([4]byte(out[16:20]))
		} else {
			to = netip.AddrFrom16([16]byte(out[24:40]))
		}
		if to != agent.Addr() {
			t.Errorf("reply addressed to %v, want %v", to, agent.Addr())
		}
		if from, m, ok := ParseReplyPacket(out); !ok || from != edge.Addr() || m != reply {
			t.Errorf("ParseReplyPacket = %v, %+v, %v; want %v, %+v", from, m, ok, edge.Addr(), reply)
		}
		if _, _, ok := ParseReplyPacket(pkt); ok {
			t.Errorf("a probe parsed as a reply")
		}
	}
}

func TestParsePacketIgnoresOtherTraffic(t *testing.T) {
	probe := Message{Type: Probe, Multiplier: 5, Interval: 100 * time.Millisecond}
	other := AppendPacket(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("100.96.0.1:53"), probe)
	if _, ok := ParsePacket(other); ok {
		t.Errorf("a datagram to port 53 parsed as a probe")
	}
	frag := AppendPacket(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("100.96.0.1:51821"), probe)
	frag[6] = 0x20 // more fragments
	if _, ok := ParsePacket(frag); ok {
		t.Errorf("a fragment parsed as a probe")
	}
}

func FuzzParsePacket(f *testing.F) {
	probe := Message{Type: Probe, Multiplier: 5, Interval: 100 * time.Millisecond}
	f.Add(AppendPacket(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("100.96.0.1:51821"), probe))
	f.Add(AppendPacket(nil, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:51821"), probe))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		m, ok := ParsePacket(pkt)
		if !ok {
			return
		}
		out := AppendReply(nil, pkt, Message{Type: Reply, Seq: m.Seq})
		if len(out) == 0 {
			t.Fatalf("no reply to an accepted probe")
		}
		checksumOK(t, out)
	})
}

// TestPaddedPacket: a probe padded to a path's MTU is that size, valid, and
// still parses as the probe it carries (the edge answers it).
func TestPaddedPacket(t *testing.T) {
	probe := Message{Type: Probe, Multiplier: 5, Interval: 100 * time.Millisecond, Seq: 3}
	for _, c := range []struct {
		src, dst string
		size     int
	}{
		{"192.0.2.10:40000", "100.96.0.1:51821", 1399},
		{"[2001:db8::10]:40000", "[fd00:5359:6564:6765::1]:51821", 1280},
		{"192.0.2.10:40000", "100.96.0.1:51821", 10}, // smaller than a probe: unpadded
	} {
		pkt := AppendPaddedPacket(nil, netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst), probe, c.size)
		want := max(c.size, len(AppendPacket(nil, netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst), probe)))
		if len(pkt) != want {
			t.Errorf("%s: padded to %d bytes, want %d", c.dst, len(pkt), want)
		}
		checksumOK(t, pkt)
		if got, ok := ParsePacket(pkt); !ok || got != probe {
			t.Errorf("%s: ParsePacket of the padded probe = %+v, %v; want %+v", c.dst, got, ok, probe)
		}
	}
}
