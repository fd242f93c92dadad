package edge

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/packettest"
)

// TestPostureChangeReDecidesEstablishedFlow swaps a device's posture in the
// snapshot the edge applies and checks that a flow already open is blocked
// on its next packet and allowed again once the posture is back, while the
// device's WireGuard session stays the same throughout.
func TestPostureChangeReDecidesEstablishedFlow(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	site := l.connector(t, "site-a", "", "198.51.100.0/24")
	laptop, ip := l.device(t, "laptop", "")
	if _, err := l.reg.CreatePolicy(ctx, model.NewPolicy{Name: "encrypted", Action: model.ActionAllow,
		Match: model.Expr{Selector: model.SelPostureDiskEncrypted, Operator: model.OpIs, Values: []string{"true"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.reg.SetPolicyDefault(ctx, model.PolicyDefault{Action: model.ActionBlock}); err != nil {
		t.Fatal(err)
	}
	storeRev, err := l.reg.Rev(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if a := l.dp.applied.Load(); a != nil && a.rev >= storeRev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the policies were not applied within 5s")
		}
	}
	for _, p := range []*agentPeer{site, laptop} {
		p.send(t, ping("100.96.0.1", "198.51.100.254"))
	}
	l.waitUp(t, 2)
	snap, err := l.reg.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The posture as the registry would store a report: no other write
	// happens in this test, so the edge keeps the snapshot applied here.
	rev := snap.Rev
	setPosture := func(encrypted bool) {
		t.Helper()
		rev++
		s := snap
		s.Rev = rev
		s.Devices = append([]model.Device(nil), snap.Devices...)
		for i := range s.Devices {
			if s.Devices[i].IP == ip {
				s.Devices[i].Posture = &model.Posture{OS: "linux", Kernel: "6.1.0-18-amd64", DiskEncrypted: encrypted, CollectedAt: time.Now()}
			}
		}
		l.dp.apply(s)
	}
	session := func() *session {
		l.dp.mu.Lock()
		defer l.dp.mu.Unlock()
		for _, ss := range l.dp.byKey {
			if ss.peer.Overlay == ip {
				return ss
			}
		}
		return nil
	}
	server := netip.MustParseAddr("198.51.100.7")
	// through reports whether the flow's next datagram reaches the server,
	// from the laptop's address, and the server's answer the laptop.
	through := func() bool {
		t.Helper()
		laptop.send(t, packettest.UDP(packettest.IP{Src: ip, Dst: server}, 40000, 7, []byte("out")))
		got := site.recv(500 * time.Millisecond)
		if got == nil {
			return false
		}
		if src, dst := netip.AddrFrom4([4]byte(got[12:16])), netip.AddrFrom4([4]byte(got[16:20])); src != ip || dst != server {
			t.Fatalf("the server got %s -> %s, want %s -> %s", src, dst, ip, server)
		}
		site.send(t, packettest.UDP(packettest.IP{Src: server, Dst: ip}, 7, 40000, []byte("back")))
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
			back := laptop.recv(time.Until(deadline))
			if back != nil && back[9] == 17 && netip.AddrFrom4([4]byte(back[12:16])) == server {
				return true
			}
		}
		t.Fatal("the server's echo reply did not reach the laptop")
		return false
	}

	setPosture(true)
	before := session()
	if before == nil {
		t.Fatal("no session for the laptop")
	}
	if !through() {
		t.Fatal("an encrypted laptop's flow was blocked")
	}
	gen := l.dp.router.Policies().Gen
	setPosture(false)
	if l.dp.router.Policies().Gen == gen {
		t.Fatal("a posture change started no new generation")
	}
	if through() {
		t.Fatal("the established flow still passes after the disk was reported unencrypted")
	}
	setPosture(true)
	if !through() {
		t.Fatal("the flow stays blocked after the disk was reported encrypted again")
	}
	if after := session(); after != before || !after.peer.Up() {
		t.Fatalf("the laptop's session was rebuilt or is down (%p -> %p)", before, after)
	}
	if flows := l.dp.router.Flows(); len(flows) != 1 {
		t.Fatalf("%d flows, want the one flow throughout", len(flows))
	}
}
