//go:build !race

package edge

import (
	"encoding/base64"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/packettest"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// The race detector allocates on its own: like transport/wireguard's
// allocation test, this one runs without -race.

// TestTrunkForwardingAllocatesNothing forwards a packet from a local
// connector onto a trunk, and one from the trunk to the connector, through
// Receive: neither allocates once its flow exists, and both arrive.
func TestTrunkForwardingAllocatesNothing(t *testing.T) {
	lab := newEdgeLab(t)
	a := lab.connector(t, "a", "", trunkSiteA.String())
	lab.waitUp(t, 1)
	tunB, _ := lab.tunnel(t, "b", "", trunkSiteB.String())
	d := lab.dp

	// The far edge: one of our endpoints peered with this one, as a trunk.
	var farGot atomic.Uint64
	bind, err := wireguard.NewAddrBind(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	farKey, err := wireguard.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	far, err := wireguard.New(wireguard.Config{PrivateKey: farKey, Bind: bind, ReceiveHeadroom: trunkHeaderSize,
		Receiver: wireguard.ReceiverFunc(func(p []wireguard.Packet) { farGot.Add(uint64(len(p))) })})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	if _, err := far.AddPeer(wireguard.PeerConfig{PublicKey: d.ep.PublicKey(), Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), d.ep.Port()),
		PersistentKeepalive: time.Second, Framing: trunkHeaderSize}); err != nil {
		t.Fatal(err)
	}
	farPub := farKey.PublicKey()
	d.setTrunks([]model.Edge{{Name: "edge-2", Healthy: true, PublicKey: base64.StdEncoding.EncodeToString(farPub[:]),
		WireGuard: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), far.Port()).String()}}, "edge-1")
	d.mu.Lock()
	tr := d.trunks["edge-2"]
	var vnet uuid.UUID
	for _, v := range d.last.VNets {
		if v.IsDefault {
			vnet = v.ID
		}
	}
	d.edgeName = "edge-1"
	d.viewed = []model.Session{{Edge: "edge-2", Kind: model.SessionConnector, ID: uuid.New(), Tunnel: tunB.ID, VNet: vnet, Active: true}}
	aKey, _ := wireguard.ParsePublicKey(a.key)
	agent := d.byKey[aKey].link.(wgLink).s
	d.mu.Unlock()
	d.rebuildRemote()
	deadline := time.Now().Add(10 * time.Second)
	for !tr.s.Established() {
		if time.Now().After(deadline) {
			t.Fatal("the trunk did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}

	run := func(name string, s *wireguard.Session, off int, pkt []byte, arrived func() uint64) {
		t.Helper()
		buf := make([]byte, off+len(pkt), wireguard.MaxMessageSize)
		putTrunkHeader(buf[off-trunkHeaderSize:off], vnetKeyOf(vnet))
		pkts := []wireguard.Packet{{Session: s, Buf: buf, Off: off}}
		send := func() {
			copy(buf[off:], pkt) // afresh: forwarding decrements the TTL in place
			d.Receive(pkts)
		}
		before := arrived()
		send() // the flow's first packet allocates its entry
		if n := testing.AllocsPerRun(200, send); n != 0 {
			t.Errorf("%s: %.1f allocations per packet, want 0", name, n)
		}
		deadline := time.Now().Add(5 * time.Second)
		for arrived() == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s: nothing arrived", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	run("onto the trunk", agent, wireguard.Headroom+trunkHeaderSize, tuntest.Ping(trunkHostB, trunkHostA), farGot.Load)
	var aGot atomic.Uint64
	go func() {
		for range a.tun.Inbound {
			aGot.Add(1)
		}
	}()
	run("off the trunk", tr.s, trunkHeaderSize+wireguard.Headroom+trunkHeaderSize, tuntest.Ping(trunkHostA, trunkHostB), aGot.Load)
	// Larger than A's session's MTU, without DF: fragments, from the
	// batch's buffers once they exist.
	d.byKey[aKey].peer.SetMTU(1280)
	frags := d.router.Stats().Fragmented
	big := packettest.UDP(packettest.IP{Src: trunkHostB, Dst: trunkHostA}, 4000, 5000, packettest.Fill(1400-28))
	run("off the trunk, in fragments", tr.s, trunkHeaderSize+wireguard.Headroom+trunkHeaderSize, big, aGot.Load)
	if d.router.Stats().Fragmented == frags {
		t.Fatal("the packet over A's MTU was not fragmented")
	}
	if st := tr; st.txPackets.Load() == 0 || st.rxPackets.Load() == 0 {
		t.Fatalf("trunk counters out %d in %d, want both counted", st.txPackets.Load(), st.rxPackets.Load())
	}
	var out, in float64
	for _, m := range d.samples() {
		if m.Name == "switchyard_edge_trunk_packets_total" && len(m.Labels) == 4 && m.Labels[1] == "edge-2" {
			switch m.Labels[3] {
			case "out":
				out = m.Value
			case "in":
				in = m.Value
			}
		}
	}
	if out != float64(tr.txPackets.Load()) || in != float64(tr.rxPackets.Load()) || out == 0 || in == 0 {
		t.Fatalf("metrics show trunk packets out %v in %v, want %d and %d", out, in, tr.txPackets.Load(), tr.rxPackets.Load())
	}
}
