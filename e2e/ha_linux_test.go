//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/lab"
)

// haSite is the high-availability lab: one site whose LAN (a bridge) has a
// server and two connector replicas, an edge, and a laptop.
//
//	server 10.1.2.3 ─┐              ┌─ r1 10.1.0.11 ─┐
//	                 └─ lan bridge ─┤                ├─ wan ─ edge 203.0.113.2
//	                                └─ r2 10.1.0.12 ─┘    laptop ─┘
type haSite struct {
	*world
	lan, server, r1, r2 *lab.NS
	lanIf               map[*lab.NS]string // each replica's LAN interface
	token               string
	laptopIP            string
	transfers           int // TCP transfers so far, each on a port of its own
}

const (
	serverIP  = "10.1.2.3"
	gatewayIP = "10.1.0.1" // the virtual gateway address keepalived moves
)

// newHASite builds the lab, starts the edge and the laptop's client, and
// creates tunnel site-a for 10.1.0.0/16. The server's default gateway is gw.
func newHASite(t *testing.T, gw string) *haSite {
	l := lab.New(t)
	w := &world{t: t, l: l, dir: t.TempDir()}
	s := &haSite{world: w, lanIf: map[*lab.NS]string{}}
	w.wan, w.edge, w.laptop = l.NS("wan"), l.NS("edge"), l.NS("laptop")
	s.lan, s.server, s.r1, s.r2 = l.NS("lan"), l.NS("server"), l.NS("r1"), l.NS("r2")
	must(t, w.wan.Sysctl("net.ipv4.ip_forward", "1"))
	for i, n := range []*lab.NS{w.edge, s.r1, s.r2, w.laptop} {
		wanIP := fmt.Sprintf("203.0.113.%d", 4*i+1)
		l.Link(w.wan, wanIP+"/30", n, fmt.Sprintf("203.0.113.%d/30", 4*i+2))
		must(t, n.Route("add", "default", "via", wanIP))
	}
	s.lan.MustExec(t, "ip", "link", "add", "br0", "type", "bridge")
	s.lan.MustExec(t, "ip", "link", "set", "br0", "up")
	for _, m := range []struct {
		ns   *lab.NS
		addr string
	}{{s.server, serverIP + "/16"}, {s.r1, "10.1.0.11/16"}, {s.r2, "10.1.0.12/16"}} {
		port, ifname := l.Link(s.lan, "", m.ns, m.addr)
		s.lan.MustExec(t, "ip", "link", "set", port, "master", "br0")
		s.lanIf[m.ns] = ifname
	}
	must(t, s.server.Route("add", "default", "via", gw))

	w.startEdge()
	s.token = w.tunnelToken("site-a")
	w.cli("tunnel", "route", "ip", "add", "10.1.0.0/16", "site-a")
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.1.0.0/16")
	_, s.laptopIP = w.startClient(w.laptop, "laptop")
	return s
}

// startReplica runs a connector replica in ns with the given priority.
func (s *haSite) startReplica(ns *lab.NS, priority int) *lab.Proc {
	p := ns.Start(s.t, binary, "connector", "run", "--state-dir", s.stateDir(ns), "--token", s.token,
		"--tun-name", "sy0", "--priority", strconv.Itoa(priority))
	must(s.t, p.WaitFor("host configured", 20*time.Second))
	return p
}

func (s *haSite) stateDir(ns *lab.NS) string { return filepath.Join(s.dir, ns.Name()) }

// replicas returns site-a's live replicas as tunnel list shows them.
func (s *haSite) replicas() []model.Connection {
	var tunnels []model.Tunnel
	must(s.t, json.Unmarshal([]byte(s.cli("tunnel", "list", "-o", "json", "--name", "site-a")), &tunnels))
	if len(tunnels) != 1 {
		s.t.Fatalf("tunnel list --name site-a = %+v", tunnels)
	}
	return tunnels[0].Connections
}

// active returns the connector id of site-a's active replica, or "".
func (s *haSite) active() string {
	for _, c := range s.replicas() {
		if c.State == model.ReplicaActive {
			return c.ID.String()
		}
	}
	return ""
}

// connectorID is the id the replica in ns enrolled with.
func (s *haSite) connectorID(ns *lab.NS) string {
	s.t.Helper()
	var id struct {
		ConnectorID string `json:"connector_id"`
	}
	data, err := os.ReadFile(filepath.Join(s.stateDir(ns), "identity.json"))
	must(s.t, err)
	must(s.t, json.Unmarshal(data, &id))
	return id.ConnectorID
}

// waitActive waits until the replica in ns is site-a's active one.
func (s *haSite) waitActive(ns *lab.NS, within time.Duration) {
	s.t.Helper()
	id := s.connectorID(ns)
	must(s.t, eventually(within, func() error {
		if got := s.active(); got != id {
			return fmt.Errorf("active replica is %q, want %s's %s: %+v", got, ns, id, s.replicas())
		}
		return nil
	}))
}

// outage runs a ping from the laptop to the server every 20 ms for d while
// event happens, and returns the longest run of lost replies as time, and
// how many pings were answered.
func (s *haSite) outage(d time.Duration, event func()) (time.Duration, int) {
	s.t.Helper()
	start := time.Now()
	pings := startPings(s.t, s.laptop, serverIP, 20*time.Millisecond, d+30*time.Second)
	time.Sleep(d / 3)
	event()
	time.Sleep(time.Until(start.Add(d)))
	r := pings.stop()
	if r.answered < 2 {
		s.t.Fatalf("ping answered %d times:\n%s", r.answered, pings.p.Output())
	}
	return r.gap(), r.answered
}

// transfer streams data from the laptop to the server over one TCP
// connection for d (about 1 MB/s) and returns a channel that yields nil once
// the server confirmed every byte.
func (s *haSite) transfer(d time.Duration) <-chan error {
	s.transfers++
	return tcpTransfer(s.t, s.laptop, s.server, fmt.Sprintf("%s:%d", serverIP, 7300+s.transfers), d)
}

// failover runs event during a ping stream (every 20 ms) and a TCP transfer
// from the laptop to the server, logs the outage as "failover gap: what: D"
// (make bench collects these lines), and checks that the transfer completed
// and the outage stayed well below the keepalive-based 3.5 s (the target is
// under 1 s; CI machines are too noisy to hold a test to it).
func (s *haSite) failover(t *testing.T, what string, event func()) {
	t.Helper()
	done := s.transfer(6 * time.Second)
	gap, answered := s.outage(6*time.Second, event)
	t.Logf("failover gap: %s: %v (target < 1s; %d pings answered)", what, gap, answered)
	if gap > 3*time.Second {
		t.Errorf("%s: the outage lasted %v", what, gap)
	}
	if err := <-done; err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// TestReplicaFailoverAtTheEdge kills the active replica's connector with
// SIGKILL under traffic. The site's hosts keep their gateway (r1, which keeps
// forwarding by a fallback route to r2 once its TUN is gone), so this
// measures the edge's side alone: heartbeats stop, and the edge sends the
// tunnel's traffic to the standby.
func TestReplicaFailoverAtTheEdge(t *testing.T) {
	s := newHASite(t, "10.1.0.11")
	must(t, s.r1.Route("add", "100.96.0.0/12", "via", "10.1.0.12", "metric", "1000"))
	r1 := s.startReplica(s.r1, 200)
	s.startReplica(s.r2, 100)
	s.waitActive(s.r1, 5*time.Second)
	s.server.Echo(t, serverIP+":7000")
	wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP) // through r1

	// tunnel list shows both replicas; a manual failover moves the traffic and back.
	list := s.cli("tunnel", "list")
	if strings.Count(list, "replica ") != 2 || !strings.Contains(list, "active prio=200") || !strings.Contains(list, "standby prio=100") {
		t.Fatalf("tunnel list does not show an active and a standby replica:\n%s", list)
	}
	s.cli("tunnel", "failover", "site-a")
	s.waitActive(s.r2, 2*time.Second)
	wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP) // through r2, replies through r1
	s.cli("tunnel", "failover", "site-a", s.connectorID(s.r1))
	s.waitActive(s.r1, 2*time.Second)

	s.failover(t, "SIGKILL of the active replica, edge side", func() {
		must(t, syscall.Kill(r1.PID(), syscall.SIGKILL))
	})
	s.waitActive(s.r2, 2*time.Second)
	wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP) // the server still sees the true source
}

// startKeepalived runs keepalived in the replica's namespace with the
// configuration shipped in deploy/keepalived, filled in for this lab.
func (s *haSite) startKeepalived(ns *lab.NS, priority int) *lab.Proc {
	s.t.Helper()
	tmpl, err := os.ReadFile("../deploy/keepalived/keepalived.conf")
	must(s.t, err)
	dir := filepath.Join(s.dir, "keepalived-"+ns.Name())
	must(s.t, os.MkdirAll(dir, 0o700))
	conf := strings.NewReplacer(
		"INTERFACE", s.lanIf[ns],
		"VIRTUAL_ROUTER_ID", "51",
		"VIRTUAL_GATEWAY", gatewayIP+"/16",
		"PRIORITY", strconv.Itoa(priority),
		"/usr/bin/switchyard", binary,
		"/var/lib/switchyard-connector", s.stateDir(ns),
	).Replace(string(tmpl))
	path := filepath.Join(dir, "keepalived.conf")
	must(s.t, os.WriteFile(path, []byte(conf), 0o600))
	p := ns.Start(s.t, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--use-file", path, "--pid", filepath.Join(dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
	return p
}

// holdsGateway reports whether ns has the virtual gateway address.
func holdsGateway(ns *lab.NS) bool {
	out, _ := ns.Exec("ip", "-4", "-o", "addr", "show")
	return strings.Contains(out, " "+gatewayIP+"/")
}

// waitGateway waits until the gateway address and the edge's active replica
// are both on ns.
func (s *haSite) waitGateway(ns *lab.NS, within time.Duration) {
	s.t.Helper()
	must(s.t, eventually(within, func() error {
		if !holdsGateway(ns) {
			return fmt.Errorf("%s does not hold the gateway address %s", ns, gatewayIP)
		}
		return nil
	}))
	s.waitActive(ns, within)
}

// TestReplicaFailoverWithKeepalived runs keepalived (Debian's package, with
// deploy/keepalived/keepalived.conf) on both replica hosts. The site's server
// routes via the virtual gateway address; when the active connector dies the
// address moves to the standby host and the edge follows, so both directions
// fail over together. A graceful stop hands over the same way.
func TestReplicaFailoverWithKeepalived(t *testing.T) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Fatal("keepalived is not installed (apt-get install keepalived; .ci/run does)")
	}
	s := newHASite(t, gatewayIP)
	r1 := s.startReplica(s.r1, 100)
	s.startReplica(s.r2, 100)
	ka1 := s.startKeepalived(s.r1, 150)
	ka2 := s.startKeepalived(s.r2, 100)
	s.waitGateway(s.r1, 10*time.Second)
	// The replica says it holds the address in its next heartbeat.
	if err := eventually(2*time.Second, func() error {
		for _, c := range s.replicas() {
			if c.State == model.ReplicaActive && !c.Preferred {
				return fmt.Errorf("the active replica is not marked preferred: %+v", c)
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	s.server.Echo(t, serverIP+":7000")
	wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP)

	t.Run("SIGKILL of the active connector", func(t *testing.T) {
		s.failover(t, "SIGKILL of the active replica, with keepalived", func() {
			must(t, syscall.Kill(r1.PID(), syscall.SIGKILL))
		})
		s.waitGateway(s.r2, 2*time.Second)
		if holdsGateway(s.r1) {
			t.Error("both hosts hold the gateway address")
		}
		out, err := s.r2.Exec(binary, "connector", "status", "--state-dir", s.stateDir(s.r2), "-o", "json")
		if err != nil || !strings.Contains(out, `"active": true`) || !strings.Contains(out, `"preferred": true`) {
			t.Errorf("connector status on the new active replica: %v\n%s", err, out)
		}
		if out, err := s.r1.Exec(binary, "connector", "status", "--state-dir", s.stateDir(s.r1)); err == nil {
			t.Errorf("connector status of the killed replica exited 0:\n%s", out)
		}
		wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP)
	})

	t.Run("the restarted replica takes the gateway back", func(t *testing.T) {
		r1 = s.startReplica(s.r1, 100)
		s.waitGateway(s.r1, 10*time.Second) // keepalived priority 150 preempts
		wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP)
	})

	t.Run("SIGTERM hands over before the replica leaves", func(t *testing.T) {
		s.failover(t, "SIGTERM of the active replica, with keepalived", func() {
			if err := r1.Stop(); err != nil {
				t.Errorf("stop r1: %v", err)
			}
		})
		s.waitGateway(s.r2, 2*time.Second)
		if !strings.Contains(r1.Output(), "handed over to a standby replica") {
			t.Errorf("the stopping replica did not report the handover:\n%s", r1.Output())
		}
	})
	for _, ka := range []*lab.Proc{ka1, ka2} {
		if err := ka.Stop(); err != nil {
			t.Errorf("stop keepalived: %v\n%s", err, ka.Output())
		}
	}
	if holdsGateway(s.r1) || holdsGateway(s.r2) {
		t.Error("the gateway address is left on a host after keepalived stopped")
	}
}

// TestEdgeRestart kills the edge with SIGKILL under traffic and starts it
// again: every vnet, tunnel, route and device is intact, and the agents,
// which keep their identities and overlay IP, carry traffic again within
// seconds of the restart.
func TestEdgeRestart(t *testing.T) {
	s := newHASite(t, "10.1.0.11")
	s.startReplica(s.r1, 100)
	s.cli("tunnel", "vnet", "add", "spare") // more state to survive
	s.cli("policy", "add", "--action", "block", "--when", "dst_port is 22", "--when", "protocol is tcp", "no-ssh")
	s.server.Echo(t, serverIP+":7000")
	wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP)
	state := func() string {
		var b strings.Builder
		for _, args := range [][]string{{"tunnel", "vnet", "list"}, {"tunnel", "list"}, {"tunnel", "route", "ip", "list"}, {"device", "list"}, {"split-tunnel", "list"}, {"policy", "list"}} {
			out := s.cli(append(args, "-o", "json")...)
			out = regexp.MustCompile(`"path_mtu":\s*\{[^}]*\}`).ReplaceAllString(out, "") // a session's, found again after the restart
			b.WriteString(regexp.MustCompile(`"(connections|last_seen|last_handshake|last_heartbeat|opened_at|origin_ip)":[^,}\]]*(\[[^\]]*\])?`).ReplaceAllString(out, ""))
		}
		return b.String()
	}
	before := state()

	var up time.Duration
	gap, answered := s.outage(12*time.Second, func() {
		must(t, syscall.Kill(s.edgeProc.PID(), syscall.SIGKILL))
		s.edgeProc.Wait()
		restarted := time.Now()
		s.startEdge()
		up = time.Since(restarted)
	})
	t.Logf("failover gap: edge SIGKILL and restart: %v (the edge took %v to start; %d pings answered)", gap, up.Round(time.Millisecond), answered)
	if gap > 8*time.Second {
		t.Errorf("traffic stopped for %v: agents did not reconnect within 5 s of the restart", gap)
	}
	if after := state(); after != before {
		t.Errorf("state changed across the edge's SIGKILL:\nbefore %s\nafter  %s", before, after)
	}
	wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP)

	// A network blip: the connector host's WAN link is down for 2 s.
	wan := lanIf(t, s.r1, "203.0.113.")
	gap, _ = s.outage(8*time.Second, func() {
		must(t, s.r1.Route("add", "blackhole", "203.0.113.2/32")) // nothing reaches the edge
		time.Sleep(2 * time.Second)
		must(t, s.r1.Route("del", "blackhole", "203.0.113.2/32"))
	})
	t.Logf("failover gap: 2 s WAN blip at the connector (%s): %v (back %v after the link)", wan, gap, gap-2*time.Second)
	if gap > 6*time.Second {
		t.Errorf("traffic stopped for %v after a 2 s blip", gap)
	}
}
