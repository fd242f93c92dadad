package router

import "testing"

// A device connected over two transports at once (WireGuard down, MASQUE up)
// gets its packets on the session that is up, and may send from either.
func TestClientOnTwoSessions(t *testing.T) {
	l := newLab(t)
	masque := &Peer{Name: "laptop", Kind: Client, Overlay: l.laptop.Overlay}
	masque.SetUp(true)
	b := NewTableBuilder()
	b.AddRoute(0, mpp("10.1.0.0/16"), l.tunA)
	b.AddReplica(l.siteA)
	b.AddClient(l.laptop)
	b.AddClient(masque)
	l.r.SetTable(b.Build())
	icmp := make([]byte, IcmpBufSize)

	if d := l.r.Route(l.siteA, udp("10.1.2.3", "100.96.0.7", 64), icmp); d.To != l.laptop {
		t.Fatalf("both sessions up: packet went to %v, want the first (WireGuard) session", d.To)
	}
	l.laptop.SetUp(false)
	if d := l.r.Route(l.siteA, udp("10.1.2.3", "100.96.0.7", 64), icmp); d.To != masque {
		t.Fatalf("WireGuard session down: packet went to %v, want the MASQUE session", d.To)
	}
	if d := l.r.Route(masque, udp("100.96.0.7", "10.1.2.3", 64), icmp); d.To != l.siteA {
		t.Fatalf("from the MASQUE session: %+v, want forwarded to site A", d)
	}
	masque.SetUp(false)
	if d := l.r.Route(l.siteA, udp("10.1.2.3", "100.96.0.7", 64), icmp); d.Verdict != Reply || d.Reason != ReasonTunnelDown {
		t.Fatalf("no session up: %+v, want host unreachable", d)
	}
}
