package agent_test

import (
	"bufio"
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	xproxy "golang.org/x/net/proxy"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/tun"
)

// TestUserspaceDomainSplitInProcess: a userspace client whose split
// tunnel (Include mode) lists only the domain app.corp.example, no
// prefix: a SOCKS5 CONNECT to app.corp.example:7000 is resolved by the
// stub through the tunnel at the site's DNS server (which sees the overlay
// address), the answer's address is learned into the split, and the
// connection goes through the tunnel (the site's server sees the overlay
// address too). Without the learned address the proxy would dial
// 192.0.2.10 from the host, where nothing answers.
func TestUserspaceDomainSplitInProcess(t *testing.T) {
	admin := startEdge(t)
	ctx := context.Background()
	tunnelToken, enrollToken := setUpSiteA(t, admin, "userspace dns")
	if _, err := admin.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "corp.example", Servers: []string{"192.0.2.53"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetSplitMode(ctx, model.SplitInclude); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddSplitEntry(ctx, model.SplitEntry{Domain: "app.corp.example"}); err != nil {
		t.Fatal(err)
	}

	conn := newInProcessAgent(t, "sy0")
	conn.run(t, func(ctx context.Context) error {
		return agent.RunConnector(ctx, agent.ConnectorConfig{Token: tunnelToken, StateDir: conn.stateDir, TunName: "sy0", Seams: conn.seams()})
	})
	// Two hosts: the DNS server (192.0.2.53, which the client routes into
	// the tunnel as a resolver's server) and the web server (192.0.2.10,
	// which only the learned address routes).
	hosts := siteHosts(t, conn, netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.10"))
	nsHost, site := hosts[0], hosts[1]
	pc, err := nsHost.ListenUDP(53)
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan netip.Addr, 10)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		r := new(dns.Msg).SetReply(req)
		if q := req.Question[0]; q.Qtype == dns.TypeA && q.Name == "app.corp.example." {
			rr, _ := dns.NewRR(q.Name + " 30 IN A 192.0.2.10")
			r.Answer = append(r.Answer, rr)
			if from, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
				asked <- from.Addr()
			}
		}
		w.WriteMsg(r)
	})}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	web, err := site.ListenTCP(7000)
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	go func() {
		for {
			c, err := web.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(c.RemoteAddr().String() + "\n"))
			c.Close()
		}
	}()

	cli := newInProcessAgent(t, "sy1")
	socks := freePort(t)
	cli.run(t, func(ctx context.Context) error {
		return agent.RunClient(ctx, agent.ClientConfig{Token: enrollToken, StateDir: cli.stateDir, Name: "laptop",
			Userspace: &agent.UserspaceConfig{SOCKS5: socks}, Seams: agent.Seams{Bind: cli.bind}})
	})
	d, err := xproxy.SOCKS5("tcp", socks, nil, xproxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	for deadline := time.Now().Add(20 * time.Second); seen == ""; {
		c, err := d.Dial("tcp", "app.corp.example:7000")
		if err == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			seen, err = bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("socks5 to app.corp.example:7000: %v", err)
		}
		if err != nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	devs, err := admin.ListDevices(ctx, false)
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices: %+v, %v", devs, err)
	}
	laptop := devs[0].IP
	if from, err := netip.ParseAddrPort(strings.TrimSpace(seen)); err != nil || from.Addr() != laptop {
		t.Fatalf("the site's server saw %q, want the device's overlay address %v", seen, laptop)
	}
	select {
	case from := <-asked:
		if from != laptop {
			t.Fatalf("the site's DNS server was asked by %v, want the overlay address %v", from, laptop)
		}
	default:
		t.Fatal("the site's DNS server was never asked app.corp.example")
	}
	if err := cli.shutdown(t); err != nil {
		t.Errorf("the userspace client: %v", err)
	}
}

// siteHosts is siteHost for several hosts behind one connector: the
// packets out of its TUN go to the host whose address is their (IPv4)
// destination.
func siteHosts(t *testing.T, conn *inProcessAgent, addrs ...netip.Addr) []*tun.Netstack {
	t.Helper()
	var out []*tun.Netstack
	byAddr := map[netip.Addr]*tun.Netstack{}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for _, a := range addrs {
		ns, err := tun.NewNetstack(a, 1420)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ns)
		byAddr[a] = ns
		dev := ns.Device()
		wg.Go(func() { // the host → the connector's TUN
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
		})
	}
	wg.Go(func() { // the connector's TUN → the host the packet is for
		for {
			select {
			case p := <-conn.in:
				if len(p) >= 20 && p[0]>>4 == 4 {
					if ns, ok := byAddr[netip.AddrFrom4([4]byte(p[16:20]))]; ok {
						ns.Device().Write([][]byte{p}, 0)
					}
				}
			case <-quit:
				return
			}
		}
	})
	t.Cleanup(func() {
		close(quit)
		for _, ns := range out {
			ns.Device().Close()
		}
		wg.Wait()
	})
	return out
}
