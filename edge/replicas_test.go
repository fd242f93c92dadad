package edge

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/transport/heartbeat"
)

// replica is an in-process connector replica that sends heartbeats the way
// agent does, from a site address through its WireGuard session.
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
				if len(p) >= 28 && p[0]>>4 == 4 && p[9] == 17 && netip.AddrFrom4([4]byte(p[12:16])) == edgeAddr.Addr() {
					m, err := heartbeat.Parse(p[28:])
					if err == nil && m.Type == heartbeat.Reply {
						r.active.Store(m.Flags&heartbeat.Active != 0)
						continue
					}
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
