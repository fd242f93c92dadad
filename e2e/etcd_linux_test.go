//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/lab"
)

// Inside the edge's namespace nothing else listens, so etcd takes its usual ports.
const (
	etcdClient = "127.0.0.1:2379"
	etcdPeer   = "127.0.0.1:2380"
)

// TestEtcdOutage runs an edge whose control plane is in etcd (a member
// process in the edge's namespace) and stops etcd under it: site-to-site
// traffic keeps flowing both ways with the true source on the last
// configuration, past the registration lease and the request timeout, while
// admin writes fail with exit status 6 naming etcd and an agent's config poll
// is told to retry (503), not that it was revoked. With etcd back, a route
// added through the CLI reaches the edge's data plane and the running
// connectors, with nothing restarted but etcd.
func TestEtcdOutage(t *testing.T) {
	w := newWorld(t)
	etcdDir := t.TempDir()
	startEtcd := func() *lab.Proc {
		t.Helper()
		p := w.edge.Start(t, etcdtest.MemberCommand(etcdDir, etcdClient, etcdPeer)...)
		must(t, p.WaitFor(etcdtest.MemberReady, 20*time.Second))
		return p
	}
	etcd := startEtcd()
	key := filepath.Join(w.dir, "cluster.key")
	if out, err := w.edge.Exec(binary, "edge", "cluster-key", "create", key); err != nil {
		t.Fatalf("cluster-key create: %v\n%s", err, out)
	}
	w.startEdge("--store", "etcd://"+etcdClient, "--cluster-key", key, "--edge-name", "edge-a")
	edgePID := w.edgeProc.PID()

	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	tokA, tokC := w.tunnelToken("site-a"), w.tunnelToken("site-c")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.1.0.0/16", "site-a")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.3.0.0/16", "site-c")
	// Site C also has 10.4.0.5, in a range not routed yet.
	must(t, w.gwc.AddAddr(lanIf(t, w.gwc, "10."), "10.4.0.1/16"))
	must(t, w.hostc.AddAddr(lanIf(t, w.hostc, "10."), "10.4.0.5/16"))
	connA := w.startConnector(w.gwa, "gwa", tokA)
	connC := w.startConnector(w.gwc, "gwc", tokC)
	w.hosta.Echo(t, "10.1.2.3:7000")
	w.hostc.Echo(t, "10.3.0.5:7000")
	w.hostc.Echo(t, "10.4.0.5:7000")

	wantPeer(t, w.hosta, "tcp", "10.3.0.5:7000", "10.1.2.3")
	wantPeer(t, w.hostc, "tcp", "10.1.2.3:7000", "10.3.0.5")
	if _, err := w.hosta.TCPEcho("10.4.0.5:7000"); err == nil {
		t.Fatal("site A reached 10.4.0.5 before any route to it exists")
	}
	var tunnels []model.Tunnel
	must(t, json.Unmarshal([]byte(w.cli("tunnel", "list", "-o", "json")), &tunnels))
	connAID := connectorID(tunnels, "site-a")
	if connAID == "" {
		t.Fatalf("site-a has no live connection: %+v", tunnels)
	}

	// etcd dies.
	if err := syscall.Kill(etcd.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	etcd.Wait()
	down := time.Now()

	out, err := w.edge.Exec(binary, "--config", filepath.Join(w.dir, "edge", "admin.json"),
		"tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.4.0.0/16", "site-c")
	if st := exitStatus(err); st != 6 || !strings.Contains(out, "etcd") {
		t.Fatalf("a route add with etcd down: exit status %d, output %q; want 6 and a message naming etcd", st, out)
	}
	// An agent that polls for its configuration now must be told to retry,
	// not that its token is no longer valid (which would make it give up).
	status, body := w.agentPoll(tokA, connAID)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "1006") || !strings.Contains(body, "etcd") {
		t.Errorf("connector config poll with etcd down: HTTP %d %s; want 503, code 1006, naming etcd", status, body)
	}
	// Past the edge's registration lease (5 s) and the request timeout (3 s):
	// traffic flows on the last configuration, both ways, true sources.
	rounds := 0
	for time.Since(down) < 8*time.Second {
		for _, c := range []struct {
			ns            *lab.NS
			network, addr string
			src           string
		}{
			{w.hosta, "tcp", "10.3.0.5:7000", "10.1.2.3"},
			{w.hostc, "tcp", "10.1.2.3:7000", "10.3.0.5"},
			{w.hosta, "udp", "10.3.0.5:7000", "10.1.2.3"},
			{w.hostc, "udp", "10.1.2.3:7000", "10.3.0.5"},
		} {
			peer, err := echoOnce(c.ns, c.network, c.addr)
			if err != nil {
				t.Fatalf("%s after etcd went down: %s %s from %s: %v", time.Since(down).Round(time.Millisecond), c.network, c.addr, c.ns, err)
			}
			if peer.Addr().String() != c.src {
				t.Fatalf("%s %s with etcd down: the server saw %s, want the true source %s", c.network, c.addr, peer.Addr(), c.src)
			}
		}
		rounds++
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("etcd down for %s: %d rounds of site-to-site echoes, all with the true source", time.Since(down).Round(time.Millisecond), rounds)
	for name, p := range map[string]*lab.Proc{"edge": w.edgeProc, "connector A": connA, "connector C": connC} {
		if p.Exited() {
			t.Fatalf("the %s exited while etcd was down:\n%s", name, p.Output())
		}
	}

	// etcd is back on its data: the edge and the connectors catch up by themselves.
	etcd = startEtcd()
	back := time.Now()
	attempts := 0
	must(t, eventually(15*time.Second, func() error {
		attempts++
		out, err := w.edge.Exec(binary, "--config", filepath.Join(w.dir, "edge", "admin.json"),
			"tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.4.0.0/16", "site-c")
		switch {
		case err == nil:
			return nil
		case strings.Contains(out, "1014") && attempts == 1:
			t.Fatal("the route add refused while etcd was down is in the store")
		case strings.Contains(out, "1014"):
			return nil // a retry after an add whose answer was lost meets its own route
		}
		return fmt.Errorf("route add after etcd's restart: %v", err)
	}))
	t.Logf("the first write succeeded %s after etcd's restart", time.Since(back).Round(time.Millisecond))
	// The agents' poll backs off up to 15 s while the edge cannot answer.
	must(t, eventually(20*time.Second, func() error {
		out, _ := w.gwa.Exec("ip", "route", "show", "dev", "sy0")
		if !strings.Contains(out, "10.4.0.0/16") {
			return fmt.Errorf("10.4.0.0/16 is not on site A's connector after etcd's restart; routes on gwa's sy0:\n%s", out)
		}
		return nil
	}))
	t.Logf("10.4.0.0/16 on site A's connector %s after etcd's restart", time.Since(back).Round(time.Millisecond))
	// Both ways through the edge's data plane: its route table and site C's
	// anti-spoofing prefixes both learned 10.4.0.0/16.
	wantPeer(t, w.hosta, "tcp", "10.4.0.5:7000", "10.1.2.3")
	must(t, eventually(5*time.Second, func() error {
		peer, err := tcpEchoFrom(w.hostc, "10.4.0.5", "10.1.2.3:7000")
		if err == nil && peer.Addr().String() != "10.4.0.5" {
			return fmt.Errorf("from 10.4.0.5: the server saw %s", peer.Addr())
		}
		return err
	}))
	wantPeer(t, w.hostc, "tcp", "10.1.2.3:7000", "10.3.0.5")

	if w.edgeProc.Exited() || w.edgeProc.PID() != edgePID || connA.Exited() || connC.Exited() {
		t.Fatal("the edge or a connector did not run through the outage")
	}
	if out := w.edgeProc.Output(); strings.Contains(out, "following the control plane stopped") ||
		(strings.Contains(out, "control plane unreachable") && !strings.Contains(out, "following the control plane again")) {
		t.Fatalf("the edge stopped following the control plane:\n%s", out)
	}
	for name, p := range map[string]*lab.Proc{"connector A": connA, "connector C": connC} {
		if out := p.Output(); strings.Contains(out, "no longer accepts") {
			t.Fatalf("%s was told the edge no longer accepts it:\n%s", name, out)
		}
	}
	// Everything stops cleanly, the edge while etcd still answers (so it
	// withdraws its registration), etcd last.
	for _, p := range []*lab.Proc{connA, connC, w.edgeProc, etcd} {
		if err := p.Stop(); err != nil {
			t.Errorf("stop: %v\n%s", err, p.Output())
		}
	}
	if out := w.edgeProc.Output(); strings.Contains(out, "registration not withdrawn") {
		t.Errorf("the edge did not withdraw its registration on a clean stop:\n%s", out)
	}
}

// exitStatus returns the exit status in err, 0 for nil, -1 if it has none.
func exitStatus(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// echoOnce is one TCPEcho or UDPEcho.
func echoOnce(ns *lab.NS, network, addr string) (netip.AddrPort, error) {
	if network == "udp" {
		return ns.UDPEcho(addr)
	}
	return ns.TCPEcho(addr)
}

// tcpEchoFrom connects from src inside ns to an Echo at addr and returns the
// source address the server saw.
func tcpEchoFrom(ns *lab.NS, src, addr string) (netip.AddrPort, error) {
	var line string
	err := ns.Do(func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("tcp echo %s from %s in %s: %w", addr, src, ns, err)
	}
	return netip.ParseAddrPort(strings.TrimPrefix(strings.TrimSpace(line), "peer="))
}

// agentPoll asks the edge for a connector's configuration as the connector
// does (tunnel token, no wait) from inside the edge's namespace, and returns
// the HTTP status and body. Only the answer is under test here, so the
// edge's certificate is not checked.
func (w *world) agentPoll(token, connectorID string) (int, string) {
	w.t.Helper()
	c := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
				return w.edge.Dial(network, addr)
			},
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		},
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest("GET", "https://"+edgeAddr+":7443/v1/agent/connectors/"+connectorID+"/config?wait=0", nil)
	must(w.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		w.t.Fatalf("connector config poll: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(body))
}
