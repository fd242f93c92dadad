//go:build linux

// Package e2e runs the real switchyard binary — edge, connectors and a client —
// in a lab of network namespaces and checks what a network operator would:
// packets arrive, with the true source address, and the blocked ones do not.
package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/lab"
	"github.com/switchyard/switchyard/internal/testbin"
	"github.com/switchyard/switchyard/transport/masque"
)

var binary string

func TestMain(m *testing.M) {
	etcdtest.MemberMain() // this binary run again as an etcd member (etcd_linux_test.go)
	os.Exit(testbin.Main(m.Run, &binary, true))
}

// world is the lab: an edge, three sites behind connectors, and a laptop,
// joined by a "wan" router namespace.
//
//	site A 10.1.0.0/16 (vnet-a) ─ gwa ┐
//	site B 10.1.0.0/16 (vnet-b) ─ gwb ┼─ wan ─ edge 203.0.113.2
//	site C 10.3.0.0/16 (vnet-a) ─ gwc ┤
//	                          laptop ─┘
type world struct {
	t                   *testing.T
	l                   *lab.Lab
	wan, edge           *lab.NS
	gwa, gwb, gwc       *lab.NS
	hosta, hostb, hostc *lab.NS
	laptop              *lab.NS
	dir                 string
	edgeProc            *lab.Proc
	protocol            string   // the agents' --protocol
	agentFlags          []string // more flags for every agent
}

const edgeAddr = "203.0.113.2"

func newWorld(t *testing.T) *world {
	l := lab.New(t)
	w := &world{t: t, l: l, dir: t.TempDir(), protocol: "wireguard"}
	w.wan, w.edge = l.NS("wan"), l.NS("edge")
	w.gwa, w.gwb, w.gwc = l.NS("gwa"), l.NS("gwb"), l.NS("gwc")
	w.hosta, w.hostb, w.hostc = l.NS("hosta"), l.NS("hostb"), l.NS("hostc")
	w.laptop = l.NS("laptop")
	must(t, w.wan.Sysctl("net.ipv4.ip_forward", "1"))

	// WAN: a /30 from 203.0.113.0/24 (TEST-NET-3) per member.
	for i, n := range []*lab.NS{w.edge, w.gwa, w.gwb, w.gwc, w.laptop} {
		wanIP := fmt.Sprintf("203.0.113.%d", 4*i+1)
		l.Link(w.wan, wanIP+"/30", n, fmt.Sprintf("203.0.113.%d/30", 4*i+2))
		must(t, n.Route("add", "default", "via", wanIP))
	}
	// Site LANs: the connector host is each LAN's default gateway.
	for _, s := range []struct {
		gw, host     *lab.NS
		gwIP, hostIP string
		prefixLen    string
	}{
		{w.gwa, w.hosta, "10.1.0.1", "10.1.2.3", "/16"},
		{w.gwb, w.hostb, "10.1.0.1", "10.1.2.3", "/16"},
		{w.gwc, w.hostc, "10.3.0.1", "10.3.0.5", "/16"},
	} {
		l.Link(s.gw, s.gwIP+s.prefixLen, s.host, s.hostIP+s.prefixLen)
		must(t, s.host.Route("add", "default", "via", s.gwIP))
	}
	// Sites A and C are dual-stack.
	for _, s := range []struct {
		gw, host     *lab.NS
		gwIP, hostIP string
	}{{w.gwa, w.hosta, "2001:db8:1::1", "2001:db8:1::3"}, {w.gwc, w.hostc, "2001:db8:3::1", "2001:db8:3::5"}} {
		gwIf := lanIf(t, s.gw, "10.")
		hostIf := lanIf(t, s.host, "10.")
		must(t, s.gw.AddAddr(gwIf, s.gwIP+"/64"))
		must(t, s.host.AddAddr(hostIf, s.hostIP+"/64"))
		must(t, s.host.Route("add", "default", "via", s.gwIP)) // an IPv6 gateway: ip picks the family
	}
	return w
}

// lanIf returns the name of the interface of ns whose IPv4 address starts with prefix.
func lanIf(t *testing.T, ns *lab.NS, prefix string) string {
	t.Helper()
	out, err := ns.Exec("ip", "-o", "-4", "addr", "show")
	must(t, err)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[3], prefix) {
			return strings.TrimSuffix(f[1], "@")
		}
	}
	t.Fatalf("%s has no interface with an address in %s*:\n%s", ns, prefix, out)
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// cli runs the admin CLI inside the edge namespace.
func (w *world) cli(args ...string) string {
	w.t.Helper()
	return cliVia(w.t, w.edge, filepath.Join(w.dir, "edge"), args...)
}

// cliVia runs the admin CLI inside ns with the admin config (API, token, CA)
// that the edge whose data dir is dataDir wrote. The binary is built with the
// race detector, which sleeps a second before every exit unless told not
// to: a CLI call has no goroutines left to wait for.
func cliVia(t testing.TB, ns *lab.NS, dataDir string, args ...string) string {
	t.Helper()
	full := append([]string{"env", "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
		binary, "--config", filepath.Join(dataDir, "admin.json")}, args...)
	out, err := ns.Exec(full...)
	if err != nil {
		t.Fatalf("switchyard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// spoofedDrops reads the edge's counter of packets dropped for a spoofed source.
func (w *world) spoofedDrops() float64 {
	w.t.Helper()
	var st struct {
		Router struct {
			Dropped map[string]float64 `json:"dropped"`
		} `json:"router"`
	}
	if err := json.Unmarshal([]byte(w.cli("stats", "-o", "json")), &st); err != nil {
		w.t.Fatal(err)
	}
	return st.Router.Dropped["spoofed"]
}

func (w *world) startEdge(extra ...string) {
	w.edgeProc = w.edge.Start(w.t, append([]string{binary, "edge", "--data-dir", filepath.Join(w.dir, "edge"),
		"--api-listen", edgeAddr + ":7443", "--wg-listen", ":51820", "--masque-listen", ":443", "--public-addr", edgeAddr + ":51820"}, extra...)...)
	must(w.t, w.edgeProc.WaitFor("edge started", 15*time.Second))
}

func (w *world) tunnelToken(name string) string {
	var created model.CreatedTunnel
	if err := json.Unmarshal([]byte(w.cli("tunnel", "create", "-o", "json", name)), &created); err != nil {
		w.t.Fatal(err)
	}
	return created.Token
}

func (w *world) startConnector(ns *lab.NS, name, token string, extra ...string) *lab.Proc {
	args := append([]string{binary, "connector", "run", "--token", token,
		"--state-dir", filepath.Join(w.dir, name), "--tun-name", "sy0", "--protocol", w.protocol}, w.agentFlags...)
	p := ns.Start(w.t, append(args, extra...)...)
	must(w.t, p.WaitFor("host configured", 20*time.Second))
	return p
}

// startClient enrolls a device called name and runs its client in ns with
// state in w.dir/name and TUN sy1, with extra flags (and, unless they say
// otherwise, --resolv-conf w.dir/name-resolv.conf); a --user among them
// goes to the enrollment token too (the token sets the device's user). It
// returns the client and its overlay IP.
func (w *world) startClient(ns *lab.NS, name string, extra ...string) (*lab.Proc, string) {
	w.t.Helper()
	create := []string{"device", "enroll-token", "create", "-o", "json"}
	if i := slices.Index(extra, "--user"); i >= 0 && i+1 < len(extra) {
		create = append(create, "--user", extra[i+1])
	}
	var enroll model.EnrollToken
	must(w.t, json.Unmarshal([]byte(w.cli(create...)), &enroll))
	args := []string{binary, "client", "up", "--token", enroll.Token, "--state-dir", filepath.Join(w.dir, name),
		"--tun-name", "sy1", "--name", name, "--protocol", w.protocol}
	if !slices.Contains(extra, "--resolv-conf") && !slices.Contains(extra, "--no-dns") {
		// The namespaces share the machine's /etc: the client's DNS gets a file of its own.
		args = append(args, "--resolv-conf", filepath.Join(w.dir, name+"-resolv.conf"))
	}
	client := ns.Start(w.t, append(args, extra...)...)
	must(w.t, client.WaitFor("host configured", 20*time.Second))
	var devices []model.Device
	must(w.t, json.Unmarshal([]byte(w.cli("device", "list", "-o", "json")), &devices))
	for _, d := range devices {
		if d.Name == name {
			return client, d.IP.String()
		}
	}
	w.t.Fatalf("device %s is not listed: %+v", name, devices)
	return nil, ""
}

// eventually retries fn for up to d, returning its last error.
func eventually(d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantPeer checks that a TCP (or UDP) echo from ns to addr works and that the
// server saw the connection come from src.
func wantPeer(t *testing.T, ns *lab.NS, network, addr, src string) {
	t.Helper()
	var peer netip.AddrPort
	err := eventually(5*time.Second, func() error {
		var err error
		if network == "udp" {
			peer, err = ns.UDPEcho(addr)
		} else {
			peer, err = ns.TCPEcho(addr)
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s %s echo from %s: %v", network, addr, ns, err)
	}
	if peer.Addr().String() != src {
		t.Fatalf("%s %s: the server saw %s, want the true source %s", network, addr, peer.Addr(), src)
	}
}

// TestDataPath runs the data path's scenarios over each transport.
func TestDataPath(t *testing.T) {
	for _, protocol := range []string{"wireguard", "masque"} {
		t.Run(protocol, func(t *testing.T) { testDataPath(t, protocol) })
	}
}

func testDataPath(t *testing.T, protocol string) {
	w := newWorld(t)
	w.protocol = protocol
	w.startEdge()
	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	w.cli("tunnel", "vnet", "add", "vnet-b")
	tokA, tokB, tokC := w.tunnelToken("site-a"), w.tunnelToken("site-b"), w.tunnelToken("site-c")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.1.0.0/16", "site-a")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-b", "10.1.0.0/16", "site-b")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.3.0.0/16", "site-c")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "2001:db8:1::/48", "site-a")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "2001:db8:3::/48", "site-c")
	// The sites' private ranges go through the tunnel.
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")

	connA := w.startConnector(w.gwa, "gwa", tokA)
	w.startConnector(w.gwb, "gwb", tokB)
	connC := w.startConnector(w.gwc, "gwc", tokC)

	client, laptopIP := w.startClient(w.laptop, "laptop")
	laptopState := filepath.Join(w.dir, "laptop")

	echoA := w.hosta.Echo(t, "10.1.2.3:7000")
	echoB := w.hostb.Echo(t, "10.1.2.3:7000")
	w.hostc.Echo(t, "10.3.0.5:7000")
	w.laptop.Echo(t, laptopIP+":7000")

	t.Run("client to site sees the overlay IP", func(t *testing.T) {
		wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", laptopIP)
		wantPeer(t, w.laptop, "udp", "10.1.2.3:7000", laptopIP)
		must(t, w.laptop.Ping("10.1.2.3", 2))
		if len(echoA.Peers()) == 0 || len(echoB.Peers()) != 0 {
			t.Fatalf("site A's server saw %v, site B's %v: vnet-a traffic must reach A only", echoA.Peers(), echoB.Peers())
		}
	})
	t.Run("server-initiated: site C to client", func(t *testing.T) {
		wantPeer(t, w.hostc, "tcp", laptopIP+":7000", "10.3.0.5")
		must(t, w.hostc.Ping(laptopIP, 2))
	})
	t.Run("site to site with true source IPs both ways", func(t *testing.T) {
		wantPeer(t, w.hosta, "tcp", "10.3.0.5:7000", "10.1.2.3")
		wantPeer(t, w.hostc, "tcp", "10.1.2.3:7000", "10.3.0.5")
		wantPeer(t, w.hostc, "udp", "10.1.2.3:7000", "10.3.0.5")
		must(t, w.hosta.Ping("10.3.0.5", 2))
		must(t, w.hostc.Ping("10.1.2.3", 2))
	})
	t.Run("the gateway host itself reaches other sites from its site address", func(t *testing.T) {
		wantPeer(t, w.gwa, "tcp", "10.3.0.5:7000", "10.1.0.1")
		must(t, w.gwc.Ping("10.1.2.3", 1))
	})
	t.Run("site to site over IPv6", func(t *testing.T) {
		w.hostc.Echo(t, "[2001:db8:3::5]:7000")
		w.hosta.Echo(t, "[2001:db8:1::3]:7000")
		wantPeer(t, w.hosta, "tcp", "[2001:db8:3::5]:7000", "2001:db8:1::3")
		wantPeer(t, w.hostc, "udp", "[2001:db8:1::3]:7000", "2001:db8:3::5")
		must(t, w.hosta.Ping("2001:db8:3::5", 2))
	})
	t.Run("TCP MSS clamped to the tunnel MTU", func(t *testing.T) {
		// Both hosts sit on 1500-byte LANs and offer an MSS of 1460; the
		// connectors clamp it to fit the tunnel (1420 bytes over WireGuard,
		// less over MASQUE).
		mtu := 1420
		if w.protocol == "masque" {
			mtu = masque.MTU
		}
		ln, err := w.hosta.Listen("tcp", "10.1.2.3:7100")
		must(t, err)
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				accepted <- c
			}
			close(accepted)
		}()
		c, err := w.hostc.Dial("tcp", "10.1.2.3:7100")
		must(t, err)
		defer c.Close()
		for _, conn := range []net.Conn{c, <-accepted} {
			if conn == nil {
				t.Fatal("hosta accepted no connection")
			}
			defer conn.Close()
			mss, err := tcpMaxSeg(conn)
			must(t, err)
			if mss > mtu-40 {
				t.Errorf("%s: MSS %d, want at most %d", conn.LocalAddr(), mss, mtu-40)
			}
		}
	})
	t.Run("vnet isolation", func(t *testing.T) {
		// Site B is in vnet-b, where 10.3.0.0/16 is not routed.
		if _, err := w.hostb.TCPEcho("10.3.0.5:7000"); err == nil {
			t.Fatal("site B (vnet-b) reached site C (vnet-a only)")
		}
		if err := w.hostb.Ping("10.3.0.5", 1); err == nil {
			t.Fatal("site B pinged site C across virtual networks")
		}
	})
	t.Run("spoofed source dropped", func(t *testing.T) {
		// The gateway of site A sends from an address outside site A's prefixes.
		must(t, w.gwa.AddAddr("lo", "10.9.9.9/32"))
		spoofedBefore := w.spoofedDrops()
		echoC := w.hostc.Echo(t, "10.3.0.5:7001")
		before := len(echoC.Peers())
		err := w.gwa.Do(func() error {
			d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("10.9.9.9")}, Timeout: time.Second}
			c, err := d.Dial("udp", "10.3.0.5:7001")
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte("spoof\n"))
			_, err = c.Read(make([]byte, 64))
			return err
		})
		if err == nil {
			t.Fatal("a packet with a spoofed source got an answer")
		}
		if after := w.spoofedDrops(); after <= spoofedBefore {
			t.Fatalf("the edge's spoofed-source counter stayed at %v", after)
		}
		for _, p := range echoC.Peers()[before:] {
			if p.Addr().String() == "10.9.9.9" {
				t.Fatal("the spoofed packet reached a server")
			}
		}
	})
	t.Run("route change reaches a running connector", func(t *testing.T) {
		w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.4.0.0/16", "site-c")
		start := time.Now()
		// The issue asks for well under a second; allow slack for a loaded CI machine.
		err := eventually(3*time.Second, func() error {
			out, _ := w.gwa.Exec("ip", "route", "show", "dev", "sy0")
			if !strings.Contains(out, "10.4.0.0/16") {
				return fmt.Errorf("routes on gwa's sy0:\n%s", out)
			}
			return nil
		})
		must(t, err)
		t.Logf("route 10.4.0.0/16 installed on site A's connector %v after the CLI call returned", time.Since(start))
	})
	t.Run("exclude mode routes everything but the edge into the tunnel", func(t *testing.T) {
		w.cli("split-tunnel", "mode", "exclude") // back to the default exclude list
		w.cli("split-tunnel", "remove", "10.0.0.0/8")
		routeDev := func(dst string) string { // the interface the laptop sends dst out of
			out, _ := w.laptop.Exec("ip", "route", "get", dst)
			f := strings.Fields(out)
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "dev" {
					return f[i+1]
				}
			}
			return out
		}
		must(t, eventually(5*time.Second, func() error {
			if got := routeDev("198.51.100.77"); got != "sy1" {
				return fmt.Errorf("198.51.100.77 (not excluded) goes %s, want sy1", got)
			}
			return nil
		}))
		for dst, want := range map[string]bool{"10.1.2.3": true, edgeAddr: false, "192.168.1.1": false, "100.96.0.9": true} {
			if got := routeDev(dst); (got == "sy1") != want {
				t.Errorf("%s goes out of %s; want the tunnel (sy1): %v", dst, got, want)
			}
		}
		wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", laptopIP)
	})
	t.Run("client switches vnet", func(t *testing.T) {
		out, err := w.laptop.Exec(binary, "client", "vnet", "--state-dir", laptopState, "vnet-b")
		if err != nil {
			t.Fatalf("client vnet vnet-b: %v\n%s", err, out)
		}
		before := len(echoB.Peers())
		wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", laptopIP)
		if len(echoB.Peers()) != before+1 {
			t.Fatal("after switching to vnet-b, 10.1.2.3 did not reach site B's server")
		}
		if _, err := w.laptop.TCPEcho("10.3.0.5:7000"); err == nil {
			t.Fatal("after switching to vnet-b, site C (vnet-a) is still reachable")
		}
	})
	t.Run("revoked device is cut off", func(t *testing.T) {
		w.cli("device", "revoke", "laptop")
		err := eventually(3*time.Second, func() error {
			if _, err := w.laptop.TCPEcho("10.1.2.3:7000"); err == nil {
				return fmt.Errorf("still connected")
			}
			return nil
		})
		must(t, err)
		// The client learns it was revoked, cleans up and exits.
		must(t, eventually(5*time.Second, func() error {
			if !client.Exited() {
				return fmt.Errorf("the revoked client is still running")
			}
			return nil
		}))
		if !strings.Contains(client.Output(), "revoked") {
			t.Errorf("the client did not say it was revoked:\n%s", client.Output())
		}
	})
	t.Run("connector restarts with its identity after a crash", func(t *testing.T) {
		var tunnels []model.Tunnel
		must(t, json.Unmarshal([]byte(w.cli("tunnel", "list", "-o", "json")), &tunnels))
		id := connectorID(tunnels, "site-a")
		if id == "" {
			t.Fatalf("site-a has no live connection: %+v", tunnels)
		}
		if err := syscall.Kill(connA.PID(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		connA.Wait()
		if v, _ := w.gwa.ReadSysctl("net.ipv4.ip_forward"); v != "1" {
			t.Fatalf("after SIGKILL ip_forward = %q; the crash should have left it on", v)
		}
		connA = w.startConnector(w.gwa, "gwa", tokA)
		if !strings.Contains(connA.Output(), "connector="+id) {
			t.Errorf("the restarted connector did not keep its identity %s:\n%s", id, connA.Output())
		}
		wantPeer(t, w.hosta, "tcp", "10.3.0.5:7000", "10.1.2.3")
	})
	t.Run("clean stop leaves nothing behind", func(t *testing.T) {
		for name, p := range map[string]*lab.Proc{"connector A": connA, "connector C": connC} {
			if err := p.Stop(); err != nil {
				t.Errorf("stop %s: %v\n%s", name, err, p.Output())
			}
		}
		for _, ns := range []*lab.NS{w.gwa, w.gwc} {
			if _, err := ns.Exec("ip", "link", "show", "sy0"); err == nil {
				t.Errorf("%s: sy0 still exists after the connector stopped", ns)
			}
			if out, _ := ns.Exec("ip", "route", "show", "10.4.0.0/16"); strings.TrimSpace(out) != "" {
				t.Errorf("%s: a route is left: %s", ns, out)
			}
			// Restored to the value before the first run, even across the crash.
			if v, _ := ns.ReadSysctl("net.ipv4.ip_forward"); v != "0" {
				t.Errorf("%s: ip_forward = %q after the connector stopped, want the original 0", ns, v)
			}
		}
		if _, err := w.laptop.Exec("ip", "link", "show", "sy1"); err == nil {
			t.Error("laptop: sy1 still exists after the client stopped")
		}
		if out, _ := w.laptop.Exec("ip", "route", "show", "10.0.0.0/8"); strings.TrimSpace(out) != "" {
			t.Errorf("laptop: a route is left: %s", out)
		}
		if err := w.edgeProc.Stop(); err != nil {
			t.Errorf("stop edge: %v", err)
		}
	})
}

// connectorID returns the id of the live connection of tunnel name, if any.
func connectorID(tunnels []model.Tunnel, name string) string {
	for _, tun := range tunnels {
		if tun.Name == name && len(tun.Connections) > 0 {
			return tun.Connections[0].ID.String()
		}
	}
	return ""
}

// tcpMaxSeg returns the MSS of a connected TCP socket.
func tcpMaxSeg(c net.Conn) (int, error) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var mss int
	var serr error
	err = raw.Control(func(fd uintptr) { mss, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG) })
	if err == nil {
		err = serr
	}
	return mss, err
}
