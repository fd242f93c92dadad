package wireguard

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// TestProberInterop: a wireguard-go device on a ProbeBind probes the path to
// the endpoint (on a ProbeBind too, over StdNetBind or AddrBind) over real
// UDP on 127.0.0.1: both directions come to the ceiling (the edge's MTU),
// the edge learns the reverse result, and the tunnel carries data meanwhile.
func TestProberInterop(t *testing.T) {
	for _, name := range []string{"StdNetBind", "AddrBind"} {
		t.Run(name, func(t *testing.T) {
			var edgeBind conn.Bind = conn.NewStdNetBind()
			if name == "AddrBind" {
				ab, err := NewAddrBind(netip.MustParseAddr("127.0.0.1"))
				if err != nil {
					t.Fatal(err)
				}
				edgeBind = ab
			}
			testProberInterop(t, NewProbeBind(edgeBind))
		})
	}
}

func testProberInterop(t *testing.T, edgeBind *ProbeBind) {
	goroutineLeakCheck(t)
	agentKey := mustKey(t)
	r := &echoReflector{}
	var edgeSaw atomic.Int64
	e := newTestEndpoint(t, Config{Bind: edgeBind, Receiver: r, OnPathMTU: func(_ *Session, mtu int) { edgeSaw.Store(int64(mtu)) }})
	r.e = e
	sess, err := e.AddPeer(PeerConfig{PublicKey: agentKey.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if ps := edgeBind.socks.Load(); ps == nil || ps.v4 == nil {
		t.Fatal("the edge's ProbeBind did not capture its IPv4 socket")
	}
	agentBind := NewProbeBind(nil)
	endpoint := fmt.Sprintf("127.0.0.1:%d", e.Port())
	_, tn := newWGDevice(t, agentBind, agentKey, fmt.Sprintf(
		"public_key=%s\nendpoint=%s\nallowed_ip=0.0.0.0/0\npersistent_keepalive_interval=1\n", hexKey(e.PublicKey()), endpoint))
	pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)

	changes := make(chan PathMTU, 16)
	p, err := agentBind.StartProber(ProberConfig{Agent: agentKey, Edge: e.PublicKey(), Endpoint: endpoint, MTU: 1420,
		OnChange: func(m PathMTU) { changes <- m }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	waitFor(t, 3*time.Second, "both directions at 1420", func() bool { return p.PathMTU() == PathMTU{Forward: 1420, Reverse: 1420} })
	t.Logf("converged in %v", time.Since(start).Round(time.Millisecond))
	waitFor(t, 3*time.Second, "the edge told both directions", func() bool {
		m, probed := sess.PathMTU()
		return probed && m == PathMTU{Forward: 1420, Reverse: 1420} && edgeSaw.Load() == 1420
	})
	pingThroughDevice(t, tn, edgeIP, agentIP, 5*time.Second)
	if st := e.Stats(); st.ProbesAnswered == 0 || st.DroppedProbe != 0 {
		t.Fatalf("edge probe counters: %+v", st)
	}
}
