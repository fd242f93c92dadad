package edge

import (
	"net/netip"
	"testing"

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
