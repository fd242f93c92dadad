package edge

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/transport/heartbeat"
)

// replica is an in-process connector replica that sends heartbeats the way
// agent does, from src through its WireGuard session: to the edge's IPv4
// address, or its IPv6 one if src is IPv6.
type replica struct {
	*agentPeer
	id       string
	src      netip.AddrPort
	priority atomic.Uint32
	flags    atomic.Uint32 // heartbeat.Flags of its probes
	beating  atomic.Bool
	active   atomic.Bool // what the edge's last reply said
	data     chan []byte // packets other than heartbeat replies
}

const (
	testInterval   = 50 * time.Millisecond
	testMultiplier = 4
)

func (l *edgeLab) replica(t *testing.T, tun model.Tunnel, secret []byte, src string, priority uint8) *replica {
	t.Helper()
	a := newAgentPeer(t, l.dp.ep.PublicKey(), l.dp.ep.Port())
	enrolled, err := l.reg.EnrollConnector(context.Background(), tun.ID, secret, model.ConnectorEnrollment{PublicKey: a.key, Hostname: "host-" + src})
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{agentPeer: a, id: enrolled.ID.String(), src: netip.AddrPortFrom(netip.MustParseAddr(src), 40000), data: make(chan []byte, 64)}
	r.priority.Store(uint32(priority))
	r.beating.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	edgeAddr := netip.AddrPortFrom(model.EdgeAddress(model.DefaultOverlayRange), heartbeat.Port)
	if r.src.Addr().Is6() {
		edgeAddr = netip.AddrPortFrom(model.EdgeAddress6, heartbeat.Port)
	}
	go func() { // send
		tick := time.NewTicker(testInterval)
		defer tick.Stop()
		for seq := uint32(1); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if !r.beating.Load() {
				continue
			}
			m := heartbeat.Message{Type: heartbeat.Probe, Flags: heartbeat.Flags(r.flags.Load()), Priority: uint8(r.priority.Load()),
				Interval: testInterval, Multiplier: testMultiplier, Seq: seq}
			select {
			case a.tun.Outbound <- heartbeat.AppendPacket(nil, r.src, edgeAddr, m):
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { // receive: heartbeat replies apart from data
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-a.tun.Inbound:
				if m, ok := replyIn(p, edgeAddr.Addr()); ok {
					r.active.Store(m.Flags&heartbeat.Active != 0)
					continue
				}
				select {
				case r.data <- p:
				default:
				}
			}
		}
	}()
	return r
}

// replyIn reads a heartbeat reply from edge out of an IPv4 or IPv6 packet.
func replyIn(p []byte, edge netip.Addr) (heartbeat.Message, bool) {
	var udp []byte
	switch {
	case len(p) >= 28 && p[0]>>4 == 4 && p[9] == 17 && netip.AddrFrom4([4]byte(p[12:16])) == edge:
		udp = p[20:]
	case len(p) >= 48 && p[0]>>4 == 6 && p[6] == 17 && netip.AddrFrom16([16]byte(p[8:24])) == edge:
		udp = p[40:]
	default:
		return heartbeat.Message{}, false
	}
	m, err := heartbeat.Parse(udp[8:])
	return m, err == nil && m.Type == heartbeat.Reply
}

// receiver sends pings from site C to site A until one of the replicas gets
// one, and returns it.
func receiver(t *testing.T, c *agentPeer, within time.Duration, replicas ...*replica) *replica {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c.send(t, ping("10.1.2.3", "10.3.0.5"))
		timeout := time.After(50 * time.Millisecond)
	wait:
		for {
			select {
			case <-timeout:
				break wait
			default:
			}
			for _, r := range replicas {
				select {
				case <-r.data:
					return r
				default:
				}
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Fatalf("no replica received site C's packets within %v", within)
	return nil
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func TestReplicaElection(t *testing.T) {
	l := newEdgeLab(t)
	tun, secret := l.tunnel(t, "site-a", "", "10.1.0.0/16")
	low := l.replica(t, tun, secret, "10.1.0.2", 100)
	high := l.replica(t, tun, secret, "10.1.0.3", 200)
	c := l.connector(t, "site-c", "", "10.3.0.0/16")
	c.send(t, ping("100.96.0.1", "10.3.0.5")) // brings its session up
	l.waitUp(t, 3)

	// The higher priority is active, and only it hears that it is.
	eventually(t, "the priority 200 replica becomes active", 5*time.Second, func() bool { return high.active.Load() && !low.active.Load() })
	if got := receiver(t, c, 5*time.Second, low, high); got != high {
		t.Fatalf("traffic went to the priority %d replica", got.priority.Load())
	}

	// A manual failover moves the traffic, and tunnel list says so.
	conn, err := l.dp.failover(tun.ID, low.id)
	if err != nil || conn.State != model.ReplicaActive || conn.ID.String() != low.id {
		t.Fatalf("failover to %s = %+v, %v", low.id, conn, err)
	}
	if got := receiver(t, c, 5*time.Second, low, high); got != low {
		t.Fatal("after a manual failover traffic still goes to the other replica")
	}
	conns := l.dp.connections()[tun.ID]
	if len(conns) != 2 || conns[0].ID.String() != low.id || conns[0].State != model.ReplicaActive || conns[1].State != model.ReplicaStandby {
		t.Fatalf("connections after failover: %+v", conns)
	}
	// Each replica says how it is connected and when the edge last heard it.
	for _, c := range conns {
		if c.Transport != "wireguard" || c.LastHandshake == nil || c.LastHeartbeat == nil ||
			time.Since(*c.LastHeartbeat) > time.Second || c.LastHandshake.After(time.Now()) || c.OriginIP == "" {
			t.Fatalf("replica %s: transport %q, last handshake %v, last heartbeat %v, origin %q; want wireguard and both recent",
				c.Hostname, c.Transport, c.LastHandshake, c.LastHeartbeat, c.OriginIP)
		}
	}
	if _, err := l.dp.failover(tun.ID, "no-such-host"); err == nil {
		t.Fatal("failover to an unknown replica succeeded")
	}

	// The manually chosen replica dies: the edge notices within its detect
	// time (4 × 50 ms) and the choice lapses.
	low.beating.Store(false)
	died := time.Now()
	receiver(t, c, 5*time.Second, high)
	t.Logf("traffic moved %v after the active replica's last heartbeat (detect time %v)", time.Since(died).Round(time.Millisecond), testMultiplier*testInterval)

	eventually(t, "the survivor hears it is active", 2*time.Second, func() bool { return high.active.Load() })

	// Back up; then the high one leaves: the handover happens on its probe.
	low.beating.Store(true)
	eventually(t, "the revived replica is up", 5*time.Second, func() bool { return len(l.dp.connections()[tun.ID]) == 2 })
	if !high.active.Load() {
		t.Fatal("the revived lower-priority replica took over from the higher one")
	}
	high.flags.Store(uint32(heartbeat.Leaving))
	took := eventually(t, "a leaving replica hands over", 2*time.Second, func() bool { return low.active.Load() && !high.active.Load() })
	t.Logf("handover confirmed to the leaving replica %v after it asked", took.Round(time.Millisecond))
	if got := receiver(t, c, 5*time.Second, low, high); got != low {
		t.Fatal("traffic still goes to the leaving replica")
	}

	// A preferred replica (its host holds the gateway address) beats priority.
	high.flags.Store(uint32(heartbeat.Preferred))
	low.priority.Store(250)
	eventually(t, "the preferred replica becomes active", 2*time.Second, func() bool { return high.active.Load() && !low.active.Load() })
}

func TestElect(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	up := func(prio uint8) candidate {
		return candidate{heard: true, reachable: true, priority: prio, upSince: t0}
	}
	with := func(c candidate, f func(*candidate)) candidate { f(&c); return c }
	active := func(c *candidate) { c.active = true }
	missed := func(c *candidate) { c.heard = false }
	for _, tc := range []struct {
		name     string
		cands    []candidate
		win      int
		wantHeld bool
	}{
		{"no replicas", nil, -1, false},
		{"highest priority", []candidate{up(100), up(200)}, 1, false},
		{"preferred beats priority", []candidate{up(200), with(up(100), func(c *candidate) { c.preferred = true })}, 1, false},
		{"manual beats preferred", []candidate{with(up(1), func(c *candidate) { c.manual = true }), with(up(200), func(c *candidate) { c.preferred = true })}, 0, false},
		{"the active one among equals", []candidate{up(100), with(up(100), active)}, 1, false},
		{"the longest connected among equals", []candidate{up(100), with(up(100), func(c *candidate) { c.upSince = t0.Add(-time.Second) })}, 1, false},
		{"a leaving replica is skipped", []candidate{with(up(200), func(c *candidate) { c.leaving = true }), up(100)}, 1, false},
		{"a standby takes over from a replica that missed heartbeats", []candidate{with(with(up(200), active), missed), up(100)}, 1, false},
		{"the only replica misses heartbeats: held while its session lasts", []candidate{with(with(up(200), active), missed)}, 0, true},
		{"held when the only other replica is leaving", []candidate{with(with(up(200), active), missed), with(up(100), func(c *candidate) { c.leaving = true })}, 0, true},
		{"not held once its session expired", []candidate{with(with(up(200), active), func(c *candidate) { c.heard, c.reachable = false, false })}, -1, false},
		{"not held when another edge lists its agent's session as active", []candidate{with(with(up(200), active), func(c *candidate) { c.heard, c.elsewhere = false, true })}, -1, false},
		{"heard here, it stays active whatever the registry says", []candidate{with(with(up(200), active), func(c *candidate) { c.elsewhere = true })}, 0, false},
		{"a standby that missed heartbeats is never held", []candidate{with(up(200), missed), with(up(100), missed)}, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			win, held := elect(tc.cands)
			if win != tc.win || held != tc.wantHeld {
				t.Errorf("elect = %d, held %v; want %d, held %v", win, held, tc.win, tc.wantHeld)
			}
		})
	}
}

// sample returns the value of the edge metric name (summed over labels).
func (l *edgeLab) sample(name string) float64 {
	var v float64
	for _, s := range l.dp.samples() {
		if s.Name == "switchyard_edge_"+name {
			v += s.Value
		}
	}
	return v
}

// icmpErrors counts the ICMP errors c received within d.
func icmpErrors(c *agentPeer, d time.Duration) int {
	n := 0
	for deadline := time.After(d); ; {
		select {
		case p := <-c.tun.Inbound:
			if len(p) >= 21 && p[0]>>4 == 4 && p[9] == 1 && p[20] == 3 { // destination unreachable
				n++
			}
		case <-deadline:
			return n
		}
	}
}

// TestOnlyReplicaKeepsTrafficWhileItsSessionLasts stalls a tunnel's only
// replica (it stops sending heartbeats, its WireGuard session stays): the
// edge keeps sending it the tunnel's traffic, and counts it, rather than
// answering "host unreachable". With a standby up, the standby takes over.
func TestOnlyReplicaKeepsTrafficWhileItsSessionLasts(t *testing.T) {
	l := newEdgeLab(t)
	tun, secret := l.tunnel(t, "site-a", "", "10.1.0.0/16")
	only := l.replica(t, tun, secret, "10.1.0.2", 200)
	c := l.connector(t, "site-c", "", "10.3.0.0/16")
	c.send(t, ping("100.96.0.1", "10.3.0.5"))
	l.waitUp(t, 2)
	eventually(t, "the replica becomes active", 5*time.Second, only.active.Load)
	receiver(t, c, 5*time.Second, only)

	only.beating.Store(false)
	time.Sleep(4 * testMultiplier * testInterval) // four detect times
	icmpErrors(c, 10*time.Millisecond)            // drain
	for i := range 10 {
		c.send(t, ping("10.1.2.3", "10.3.0.5"))
		select {
		case <-only.data:
		case <-time.After(time.Second):
			t.Fatalf("ping %d: the replica that missed its heartbeats got none of its tunnel's traffic", i)
		}
	}
	if n := icmpErrors(c, 100*time.Millisecond); n > 0 {
		t.Errorf("site C got %d ICMP errors for a tunnel whose replica's session is valid", n)
	}
	if n := l.sample("sent_to_missed_replica_total"); n < 10 {
		t.Errorf("sent_to_missed_replica_total = %v, want at least 10", n)
	}
	if conns := l.dp.connections()[tun.ID]; len(conns) != 1 || conns[0].State != model.ReplicaActive || !conns[0].MissedHeartbeats {
		t.Errorf("connections of a held replica: %+v", conns)
	}

	// Heartbeats resume: the replica is plainly active again.
	only.beating.Store(true)
	eventually(t, "the replica is no longer held", 2*time.Second, func() bool {
		conns := l.dp.connections()[tun.ID]
		return len(conns) == 1 && !conns[0].MissedHeartbeats
	})

	// With a standby up, missing heartbeats moves the traffic as before.
	standby := l.replica(t, tun, secret, "10.1.0.3", 100)
	eventually(t, "the standby is up", 15*time.Second, func() bool { return len(l.dp.connections()[tun.ID]) == 2 })
	only.beating.Store(false)
	receiver(t, c, 5*time.Second, standby)
	time.Sleep(50 * time.Millisecond) // pings sent before the switch arrive
	for len(only.data) > 0 {
		<-only.data
	}
	before := l.sample("sent_to_missed_replica_total")
	for range 5 {
		if r := receiver(t, c, time.Second, only, standby); r != standby {
			t.Fatal("traffic went to the replica that missed heartbeats although a standby is up")
		}
	}
	if after := l.sample("sent_to_missed_replica_total"); after != before {
		t.Errorf("sent_to_missed_replica_total rose from %v to %v with a standby up", before, after)
	}
}

// TestHoldEndsWhenTheRegistryShowsTheReplicaActiveElsewhere: a tunnel's
// only replica stops answering heartbeats here and is held active; once the
// cluster's session view lists that connector's session on another edge as
// active (the agent moved there), the edge holds it no more.
func TestHoldEndsWhenTheRegistryShowsTheReplicaActiveElsewhere(t *testing.T) {
	l := newEdgeLab(t)
	tun, secret := l.tunnel(t, "site-a", "", "10.1.0.0/16")
	only := l.replica(t, tun, secret, "10.1.0.2", 200)
	l.waitUp(t, 1)
	eventually(t, "the replica becomes active", 5*time.Second, only.active.Load)
	only.beating.Store(false)
	eventually(t, "the replica is held", 2*time.Second, func() bool {
		conns := l.dp.connections()[tun.ID]
		return len(conns) == 1 && conns[0].State == model.ReplicaActive && conns[0].MissedHeartbeats
	})
	var vnet uuid.UUID
	for _, v := range l.dp.last.VNets {
		if v.IsDefault {
			vnet = v.ID
		}
	}
	l.dp.mu.Lock()
	l.dp.edgeName = "edge-1"
	l.dp.mu.Unlock()
	l.dp.readView([]model.Session{{Edge: "edge-2", Kind: model.SessionConnector, ID: uuid.MustParse(only.id), Tunnel: tun.ID, VNet: vnet, Active: true}}, nil)
	eventually(t, "the hold ends", 2*time.Second, func() bool {
		conns := l.dp.connections()[tun.ID]
		return len(conns) == 0 || (conns[0].State != model.ReplicaActive && !conns[0].MissedHeartbeats)
	})
}

// TestHeartbeatsFromAnySource: a connector whose host has no address in its
// site's prefixes, or IPv6 ones only, still proves it is alive. The edge
// answers heartbeats by the session they came on, whatever their source,
// while other packets from outside the site stay spoofed.
func TestHeartbeatsFromAnySource(t *testing.T) {
	for _, tc := range []struct {
		name, prefix, src string
		outside           bool
	}{
		{"IPv4 outside the site", "10.1.0.0/16", "192.0.2.7", true},
		{"IPv6 site address", "2001:db8:1::/48", "2001:db8:1::2", false},
		{"IPv6 outside the site", "2001:db8:1::/48", "2001:db8:99::7", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newEdgeLab(t)
			tun, secret := l.tunnel(t, "site-a", "", tc.prefix)
			r := l.replica(t, tun, secret, tc.src, 100)
			// 15 s: a handshake that raced the directory update is retried after 5 s.
			eventually(t, "the replica hears it is active", 15*time.Second, r.active.Load)
			if n := l.dp.router.Dropped(router.ReasonSpoofed); n != 0 {
				t.Errorf("%d heartbeats counted as spoofed", n)
			}
			if l.sample("heartbeats_total") == 0 {
				t.Error("heartbeats_total = 0")
			}
			if !tc.outside {
				return
			}
			// Anything else from that source stays spoofed, even to the edge.
			edge := netip.AddrPortFrom(model.EdgeAddress(model.DefaultOverlayRange), 53)
			if r.src.Addr().Is6() {
				edge = netip.AddrPortFrom(model.EdgeAddress6, 53)
			}
			r.send(t, heartbeat.AppendPacket(nil, r.src, edge, heartbeat.Message{Type: heartbeat.Probe, Interval: testInterval, Multiplier: 1}))
			eventually(t, "a non-heartbeat datagram is dropped as spoofed", 2*time.Second, func() bool {
				return l.dp.router.Dropped(router.ReasonSpoofed) == 1
			})
		})
	}
}
