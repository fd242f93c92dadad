package agent_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	xproxy "golang.org/x/net/proxy"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/tun"
)

// freePort returns a loopback TCP address nobody listens on (for a proxy
// the agent opens itself).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// siteHost is a host of site A at addr: a userspace stack wired to the
// connector's TUN, as a server behind the connector would be.
func siteHost(t *testing.T, conn *inProcessAgent, addr netip.Addr) *tun.Netstack {
	t.Helper()
	ns, err := tun.NewNetstack(addr, 1420)
	if err != nil {
		t.Fatal(err)
	}
	dev := ns.Device()
	quit := make(chan struct{})
	done := make(chan struct{}, 2)
	go func() { // the connector's TUN → the host
		defer func() { done <- struct{}{} }()
		for {
			select {
			case p := <-conn.in:
				dev.Write([][]byte{p}, 0)
			case <-quit:
				return
			}
		}
	}()
	go func() { // the host → the connector's TUN
		defer func() { done <- struct{}{} }()
		bufs, sizes := [][]byte{make([]byte, 65535)}, []int{0}
		for {
			n, err := dev.Read(bufs, sizes, 0)
			if err != nil {
				return
			}
			for i := range n {
				select {
				case conn.tun.Outbound <- append([]byte(nil), bufs[i][:sizes[i]]...):
				case <-quit:
					return
				}
			}
		}
	}()
	t.Cleanup(func() { close(quit); dev.Close(); <-done; <-done })
	return ns
}

// TestUserspaceClientInProcess runs an edge, a connector (on tuntest's
// TUN, behind which a userspace stack plays a site host at 192.0.2.10) and
// a userspace client, with no TUN and no host seam of its own: a stock
// SOCKS5 client reaches the site's server, which sees the device's overlay
// address as the source; the site host connects to the client's exposed
// port and reaches the local server behind it.
func TestUserspaceClientInProcess(t *testing.T) {
	admin := startEdge(t)
	ctx := context.Background()
	tunnelToken, enrollToken := setUpSiteA(t, admin, "userspace")

	conn := newInProcessAgent(t, "sy0")
	conn.run(t, func(ctx context.Context) error {
		return agent.RunConnector(ctx, agent.ConnectorConfig{Token: tunnelToken, StateDir: conn.stateDir, TunName: "sy0", Seams: conn.seams()})
	})
	site := siteHost(t, conn, netip.MustParseAddr("192.0.2.10"))
	web, err := site.ListenTCP(7000)
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	go func() { // says who connected
		for {
			c, err := web.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().String()+"\n")
			c.Close()
		}
	}()

	local, err := net.Listen("tcp", "127.0.0.1:0") // the device's own server, behind --expose
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	go func() {
		for {
			c, err := local.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()

	cli := newInProcessAgent(t, "sy1")
	socks := freePort(t)
	cli.run(t, func(ctx context.Context) error {
		return agent.RunClient(ctx, agent.ClientConfig{Token: enrollToken, StateDir: cli.stateDir, Name: "laptop",
			Userspace: &agent.UserspaceConfig{SOCKS5: socks, Expose: []agent.Expose{{Port: 2222, Local: local.Addr().String()}}},
			Seams:     agent.Seams{Bind: cli.bind}})
	})
	var laptop netip.Addr
	for deadline := time.Now().Add(15 * time.Second); !laptop.IsValid(); time.Sleep(50 * time.Millisecond) {
		devs, err := admin.ListDevices(ctx, false)
		if err == nil && len(devs) == 1 {
			laptop = devs[0].IP
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client did not enroll within 15 s: %+v, %v", devs, err)
		}
	}

	// Outbound: SOCKS5 CONNECT to the site's server.
	d, err := xproxy.SOCKS5("tcp", socks, nil, xproxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	for deadline := time.Now().Add(20 * time.Second); seen == ""; {
		c, err := d.Dial("tcp", "192.0.2.10:7000")
		if err == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			seen, err = bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("socks5 to the site's server: %v", err)
		}
		if err != nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if from, err := netip.ParseAddrPort(strings.TrimSpace(seen)); err != nil || from.Addr() != laptop {
		t.Fatalf("the site's server saw %q, want the device's overlay address %v", seen, laptop)
	}
	if cli.bind.sent.Load() == 0 {
		t.Error("the userspace client sent nothing through Seams.Bind")
	}

	// Inbound: the site host connects to the exposed port.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := site.DialTCP(cctx, netip.AddrPortFrom(laptop, 2222))
	if err != nil {
		t.Fatalf("the site host to the exposed port %v:2222: %v", laptop, err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello from the site\n")
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "hello from the site\n" {
		t.Fatalf("through the exposed port: %q, %v", got, err)
	}
	c.Close()
	// A port not exposed is refused.
	if c, err := site.DialTCP(cctx, netip.AddrPortFrom(laptop, 2223)); err == nil {
		c.Close()
		t.Fatal("the site host connected to a port that is not exposed")
	}

	if err := cli.shutdown(t); err != nil {
		t.Errorf("the userspace client: %v", err)
	}
}

// TestUserspaceProxyPortInUse: a proxy port in use fails the start at
// once, naming the port.
func TestUserspaceProxyPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = agent.RunClient(context.Background(), agent.ClientConfig{StateDir: t.TempDir(),
		Userspace: &agent.UserspaceConfig{SOCKS5: l.Addr().String()}})
	if err == nil || !strings.Contains(err.Error(), "listen for socks5 on "+l.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("RunClient with socks5 on a port in use = %v", err)
	}
}
