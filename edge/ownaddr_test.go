package edge

import (
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/transport/heartbeat"
)

// TestHeartbeatsAtTheEdgesOwnAddress: an edge of a cluster answers
// heartbeats at the address every edge shares and at its own, never at
// another edge's.
func TestHeartbeatsAtTheEdgesOwnAddress(t *testing.T) {
	overlay := model.DefaultOverlayRange
	d := &dataplane{self4: model.EdgeAddress(overlay), self6: model.EdgeAddress6,
		own4: model.EdgeOwnAddress(overlay, 1), own6: model.EdgeOwnAddress6(1)}
	src4, src6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8:1::10")
	m := heartbeat.Message{Type: heartbeat.Probe, Interval: testInterval, Multiplier: testMultiplier, Seq: 7}
	for _, tc := range []struct {
		name string
		dst  netip.Addr
		want bool
	}{
		{"the shared address", model.EdgeAddress(overlay), true},
		{"the shared IPv6 address", model.EdgeAddress6, true},
		{"its own address", model.EdgeOwnAddress(overlay, 1), true},
		{"its own IPv6 address", model.EdgeOwnAddress6(1), true},
		{"another edge's address", model.EdgeOwnAddress(overlay, 0), false},
		{"another edge's IPv6 address", model.EdgeOwnAddress6(0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := src4
			if tc.dst.Is6() {
				src = src6
			}
			pkt := heartbeat.AppendPacket(nil, netip.AddrPortFrom(src, 40000), netip.AddrPortFrom(tc.dst, heartbeat.Port), m)
			if got, ok := d.heartbeatProbe(pkt); ok != tc.want || ok && got.Seq != 7 {
				t.Errorf("heartbeatProbe to %s = %+v, %v; want answered=%v", tc.dst, got, ok, tc.want)
			}
		})
	}
}

// TestStandbySessionIsNeverActive: a replica whose heartbeats say it is its
// agent's standby session (the agent's traffic goes through another edge)
// is not its tunnel's active replica here, even as its only one, and gets
// none of its traffic; once its heartbeats drop the flag (the agent failed
// over to this edge), it is active at once.
func TestStandbySessionIsNeverActive(t *testing.T) {
	l := newEdgeLab(t)
	tun, secret := l.tunnel(t, "site-a", "", "10.1.0.0/16")
	r := l.replica(t, tun, secret, "10.1.0.2", 100)
	r.flags.Store(uint32(heartbeat.Standby))
	c := l.connector(t, "site-c", "", "10.3.0.0/16")
	c.send(t, ping("100.96.0.1", "10.3.0.5"))
	l.waitUp(t, 2)
	eventually(t, "the standby replica is up", 15*time.Second, func() bool { return len(l.dp.connections()[tun.ID]) == 1 })
	time.Sleep(4 * testInterval)
	if r.active.Load() {
		t.Fatal("the edge made a standby session its tunnel's active replica")
	}
	if conns := l.dp.connections()[tun.ID]; conns[0].State != model.ReplicaStandby {
		t.Fatalf("connections: %+v, want the one standby", conns)
	}
	c.send(t, ping("10.3.0.5", "10.1.2.3"))
	select {
	case p := <-r.data:
		t.Fatalf("the standby session got traffic: % x", p[:20])
	case <-time.After(200 * time.Millisecond):
	}
	r.flags.Store(0)
	took := eventually(t, "the session turns active when its agent fails over", 2*time.Second, r.active.Load)
	t.Logf("active %v after its heartbeats dropped the standby flag", took.Round(time.Millisecond))
	if got := receiver(t, c, 5*time.Second, r); got != r {
		t.Fatal("no traffic to the now active replica")
	}
}
