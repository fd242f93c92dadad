//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/lab"
)

// devicePosture is the posture the admin's device list shows for name; nil
// before its first report.
func (w *world) devicePosture(name string) *model.Posture {
	w.t.Helper()
	var devices []model.Device
	must(w.t, json.Unmarshal([]byte(w.cli("device", "list", "-o", "json")), &devices))
	for _, d := range devices {
		if d.Name == name {
			return d.Posture
		}
	}
	w.t.Fatalf("device %s is not listed: %+v", name, devices)
	return nil
}

// wantPosture waits up to d for the device list to show a posture of name
// that ok accepts, and returns it.
func (w *world) wantPosture(name string, d time.Duration, what string, ok func(model.Posture) bool) model.Posture {
	w.t.Helper()
	var last *model.Posture
	err := eventually(d, func() error {
		if last = w.devicePosture(name); last == nil || !ok(*last) {
			return fmt.Errorf("the device list shows %s's posture as %+v; want %s", name, last, what)
		}
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return *last
}

// hostFirewall adds (up) or deletes an nftables table in ns whose chain
// hooks input: a host firewall as nft or iptables-nft would set one up.
func hostFirewall(t *testing.T, ns *lab.NS, up bool) {
	t.Helper()
	if up {
		ns.MustExec(t, "nft", "add", "table", "inet", "hostfw")
		ns.MustExec(t, "nft", "add", "chain", "inet", "hostfw", "input", "{ type filter hook input priority 0; policy accept; }")
		return
	}
	ns.MustExec(t, "nft", "delete", "table", "inet", "hostfw")
}

// clientCLI runs the CLI against the client whose state is in w.dir/name,
// inside ns.
func (w *world) clientCLI(ns *lab.NS, name string, args ...string) string {
	w.t.Helper()
	full := append([]string{"env", "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"), binary}, args...)
	full = append(full, "--state-dir", filepath.Join(w.dir, name))
	out, err := ns.Exec(full...)
	if err != nil {
		w.t.Fatalf("switchyard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestPostureE2E: a client reports its real posture at enrollment and
// then its posture network; a host firewall set up in its namespace, and
// taken down again, shows in the admin's device list within seconds; the
// client's own `client posture` says the same; a posture network removed
// reaches the client through its configuration.
func TestPostureE2E(t *testing.T) {
	w := newWorld(t)
	w.startEdge()
	// The laptop's WAN address is 203.0.113.18/30: on "office", not "home".
	w.cli("posture", "network", "add", "home", "192.0.2.0/24")
	w.cli("posture", "network", "add", "office", "203.0.113.16/30")
	if out := w.cli("posture", "network", "list"); !strings.Contains(out, "office") || !strings.Contains(out, "203.0.113.16/30") {
		t.Fatalf("posture network list:\n%s", out)
	}
	client, _ := w.startClient(w.laptop, "laptop", "--posture-interval", "1s")
	must(t, client.WaitFor("device posture reported", 10*time.Second))

	p := w.wantPosture("laptop", 5*time.Second, "the office network, no firewall", func(p model.Posture) bool {
		return p.Network == "office" && !p.Firewall
	})
	if p.OS != "linux" || p.Kernel == "" || p.OSVersion == "" || p.ClientVersion == "" || time.Since(p.CollectedAt) > time.Minute {
		t.Fatalf("the laptop's posture = %+v", p)
	}

	hostFirewall(t, w.laptop, true)
	start := time.Now()
	w.wantPosture("laptop", 5*time.Second, "a firewall", func(p model.Posture) bool { return p.Firewall })
	t.Logf("a firewall set up showed in the device list after %v", time.Since(start).Round(time.Millisecond))
	var local model.Posture
	must(t, json.Unmarshal([]byte(w.clientCLI(w.laptop, "laptop", "client", "posture", "-o", "json")), &local))
	if !local.Firewall || local.Network != "office" || local.Kernel != p.Kernel {
		t.Fatalf("client posture = %+v, want the firewall on the office network", local)
	}

	hostFirewall(t, w.laptop, false)
	w.wantPosture("laptop", 5*time.Second, "no firewall", func(p model.Posture) bool { return !p.Firewall })

	w.cli("posture", "network", "remove", "office")
	w.wantPosture("laptop", 5*time.Second, "no network", func(p model.Posture) bool { return p.Network == "" })
}

// lineEcho is one TCP connection to an echo server, exchanging numbered
// lines: an exchange succeeds when its own line comes back, whatever
// older ones (held up while the flow was blocked) arrive before it.
type lineEcho struct {
	c  net.Conn
	rd *bufio.Reader
	n  int
}

func (e *lineEcho) exchange(wait time.Duration) error {
	e.n++
	line := fmt.Sprintf("ping-%d\n", e.n)
	e.c.SetDeadline(time.Now().Add(wait))
	if _, err := e.c.Write([]byte(line)); err != nil {
		return err
	}
	for {
		got, err := e.rd.ReadString('\n')
		if err != nil {
			return err
		}
		if got == line {
			return nil
		}
	}
}

// serveLineEcho serves a TCP echo (every byte back, the connection kept
// open) on addr inside ns until the test ends.
func serveLineEcho(t *testing.T, ns *lab.NS, addr string) {
	t.Helper()
	ln, err := ns.Listen("tcp", addr)
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go io.Copy(c, c)
		}
	}()
}

// TestPosturePolicyE2E: a policy blocking (silently) devices without a host
// firewall to a site server cuts a TCP connection that was open while the
// laptop had one, within seconds of its firewall coming down, refuses new
// ones, and lets the same connection through again once the firewall is
// back.
func TestPosturePolicyE2E(t *testing.T) {
	w := newWorld(t)
	w.startEdge()
	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	tok := w.tunnelToken("site-a")
	w.cli("tunnel", "route", "ip", "add", "10.1.0.0/16", "site-a")
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")
	w.startConnector(w.gwa, "gwa", tok)
	w.hosta.Echo(t, "10.1.2.3:7000")
	serveLineEcho(t, w.hosta, "10.1.2.3:7001")
	hostFirewall(t, w.laptop, true)
	_, laptopIP := w.startClient(w.laptop, "laptop", "--posture-interval", "1s")
	w.wantPosture("laptop", 5*time.Second, "a firewall", func(p model.Posture) bool { return p.Firewall })
	// Silent: the blocked segments are dropped, not answered with a RST
	// (which would end the connection), so the same connection can pass again.
	w.addPolicy("--action", "block", "--silent", "--when", "dst_ip is 10.1.2.3", "--when", "device.posture.firewall is false", "firewall-required")

	wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", laptopIP) // a firewall: allowed, with the true source
	c, err := w.laptop.Dial("tcp", "10.1.2.3:7001")
	must(t, err)
	defer c.Close()
	e := &lineEcho{c: c, rd: bufio.NewReader(c)}
	must(t, e.exchange(2*time.Second))

	hostFirewall(t, w.laptop, false)
	start := time.Now()
	for e.exchange(500*time.Millisecond) == nil {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the open connection still passes 5s after the laptop's firewall came down")
		}
	}
	t.Logf("the open connection was cut %v after the firewall came down", time.Since(start).Round(time.Millisecond))
	if p := w.devicePosture("laptop"); p == nil || p.Firewall {
		t.Fatalf("the connection was cut, but the device list shows the posture %+v", p)
	}
	if c2, err := w.laptop.Dial("tcp", "10.1.2.3:7000"); err == nil { // lab's Dial gives up after a few seconds
		c2.Close()
		t.Fatal("a new connection passed while the laptop had no firewall")
	}

	hostFirewall(t, w.laptop, true)
	start = time.Now()
	must(t, eventually(5*time.Second, func() error { return e.exchange(time.Second) }))
	t.Logf("the same connection passes again %v after the firewall came back", time.Since(start).Round(time.Millisecond))
	wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", laptopIP)
}
