package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/edge"
	"github.com/switchyard/switchyard/internal/packettest"
	"github.com/switchyard/switchyard/routing/host/hosttest"
)

// countingBind is wireguard-go's default bind, counting what it sends: the
// proof that the agent's WireGuard device uses Seams.Bind. It drops what
// goes to or comes from the address in blocked (host:port), as a network
// that lost that peer would.
type countingBind struct {
	conn.Bind
	sent    atomic.Int64
	blocked atomic.Pointer[string]
}

func (b *countingBind) isBlocked(ep conn.Endpoint) bool {
	blocked := b.blocked.Load()
	return blocked != nil && ep.DstToString() == *blocked
}

func (b *countingBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if b.isBlocked(ep) {
		return nil
	}
	b.sent.Add(int64(len(bufs)))
	return b.Bind.Send(bufs, ep)
}

func (b *countingBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	for i, fn := range fns {
		fns[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			n, err := fn(packets, sizes, eps)
			for j := range n {
				if eps[j] != nil && b.isBlocked(eps[j]) {
					sizes[j] = 0 // wireguard-go skips empty packets
				}
			}
			return n, err
		}
	}
	return fns, actual, err
}

// inProcessAgent is a connector or a client running in a goroutine on
// tuntest's TUN, the host fake and a counting bind. What its TUN writes
// arrives on in; as with a kernel TUN's queue, what does not fit is dropped
// (a ChannelTUN's Write would block the WireGuard device until read).
type inProcessAgent struct {
	stateDir string
	tun      *tuntest.ChannelTUN
	in       chan []byte
	host     *hosttest.Fake
	bind     *countingBind
	done     chan error
	stop     context.CancelFunc
}

func newInProcessAgent(t *testing.T, tunName string) *inProcessAgent {
	t.Helper()
	a := &inProcessAgent{
		stateDir: filepath.Join(t.TempDir(), "state"),
		tun:      tuntest.NewChannelTUN(),
		in:       make(chan []byte, 64),
		host:     hosttest.New(),
		bind:     &countingBind{Bind: conn.NewDefaultBind()},
		done:     make(chan error, 1),
	}
	a.host.AddLink(tunName, 7)
	quit, drained := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case p := <-a.tun.Inbound:
				select {
				case a.in <- p:
				default:
				}
			case <-quit:
				return
			}
		}
	}()
	t.Cleanup(func() { close(quit); <-drained }) // after the agent's cleanup: registered first
	return a
}

func (a *inProcessAgent) seams() agent.Seams {
	return agent.Seams{TUN: a.tun.TUN(), Host: a.host, Bind: a.bind}
}

// run starts fn in a goroutine; t's cleanup stops it if the test did not.
func (a *inProcessAgent) run(t *testing.T, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	go func() { a.done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			t.Error("the agent did not stop within 10 s")
		}
	})
}

// shutdown stops the agent and returns what its run returned.
func (a *inProcessAgent) shutdown(t *testing.T) error {
	t.Helper()
	a.stop()
	select {
	case err := <-a.done:
		a.done <- nil // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not stop within 10 s")
		return nil
	}
}

// startEdge runs an edge in process on loopback, with its bbolt store in a
// temporary directory, and returns an admin client of its API.
func startEdge(t *testing.T) *client.Client {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- edge.Run(ctx, edge.Config{DataDir: dir, APIListen: "127.0.0.1:0", WGListen: "127.0.0.1:0",
			Log: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("edge: %v", err)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-errc:
			errc <- err
			t.Fatalf("edge: %v", err)
		default:
		}
		cfg, err := client.LoadConfig(filepath.Join(dir, client.ConfigFile))
		if err == nil {
			var admin *client.Client
			if admin, err = client.New(cfg.API, cfg.Token, []byte(cfg.CA)); err == nil {
				if _, err = admin.ListVNets(ctx, model.VNetFilter{}); err == nil {
					return admin
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edge's API did not answer within 15 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setUpSiteA creates, through admin, the default vnet vnet-a, the tunnel
// site-a routing 192.0.2.0/24 there, and an enrollment token with comment;
// it returns the tunnel's token and the enrollment token.
func setUpSiteA(t *testing.T, admin *client.Client, comment string) (tunnelToken, enrollToken string) {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.CreateVNet(ctx, model.NewVNet{Name: "vnet-a", IsDefault: true}); err != nil {
		t.Fatal(err)
	}
	tunnel, err := admin.CreateTunnel(ctx, "site-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddRoute(ctx, model.NewRoute{Network: netip.MustParsePrefix("192.0.2.0/24"), Tunnel: "site-a", VNet: "vnet-a"}); err != nil {
		t.Fatal(err)
	}
	et, err := admin.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: comment})
	if err != nil {
		t.Fatal(err)
	}
	return tunnel.Token, et.Token
}

// udpPacket builds an IPv4 UDP packet from src to dst carrying payload.
func udpPacket(src, dst netip.AddrPort, payload string) []byte {
	return packettest.UDP(packettest.IP{Src: src.Addr(), Dst: dst.Addr()}, src.Port(), dst.Port(), []byte(payload))
}

// exchange writes pkt into from's TUN every 100 ms until a packet with the
// same payload comes out of to's TUN, and returns that packet.
func exchange(t *testing.T, what string, from, to *inProcessAgent, pkt []byte, within time.Duration) []byte {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(within)
	for {
		select {
		case from.tun.Outbound <- pkt:
		case got := <-to.in:
			if len(got) == len(pkt) && string(got[28:]) == string(pkt[28:]) {
				return got
			}
			continue
		case <-deadline:
			t.Fatalf("%s: no packet came out within %v", what, within)
		}
		select { // wait for the next tick, taking what comes out meanwhile
		case <-tick.C:
		case got := <-to.in:
			if len(got) == len(pkt) && string(got[28:]) == string(pkt[28:]) {
				return got
			}
		}
	}
}

// routed reports whether one of routes (as hosttest.Fake formats them)
// covers a and ends in rest.
func routed(routes []string, a netip.Addr, rest string) bool {
	for _, r := range routes {
		dst, tail, _ := strings.Cut(r, " ")
		if p, err := netip.ParsePrefix(dst); err == nil && p.Contains(a) && tail == rest {
			return true
		}
	}
	return false
}

// addrs returns an IPv4 packet's source and destination.
func addrs(pkt []byte) (src, dst netip.Addr) {
	return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
}

// TestConnectorAndClientInProcess runs an edge, a connector and a client in
// this process, without root or namespaces: the agents on tuntest TUNs and
// the host fake, over WireGuard on real loopback UDP, enrolled as in
// production (a tunnel token, an enrollment token). A packet the client's
// TUN reads from its overlay address to a site address comes out of the
// connector's TUN with that source; the reply goes back the same way. The
// control sockets answer while the agents run (mode 0600) and are gone
// after they stop, as are their routes.
func TestConnectorAndClientInProcess(t *testing.T) {
	admin := startEdge(t)
	ctx := context.Background()
	tunnelToken, enrollToken := setUpSiteA(t, admin, "in process")

	conn := newInProcessAgent(t, "sy0")
	conn.run(t, func(ctx context.Context) error {
		return agent.RunConnector(ctx, agent.ConnectorConfig{Token: tunnelToken, StateDir: conn.stateDir, TunName: "sy0", Seams: conn.seams()})
	})
	cli := newInProcessAgent(t, "sy1")
	cli.run(t, func(ctx context.Context) error {
		return agent.RunClient(ctx, agent.ClientConfig{Token: enrollToken, StateDir: cli.stateDir, TunName: "sy1", Name: "laptop", Seams: cli.seams()})
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
	server := netip.MustParseAddr("192.0.2.10")

	out := exchange(t, "client to site", cli, conn,
		udpPacket(netip.AddrPortFrom(laptop, 40000), netip.AddrPortFrom(server, 7000), "request"), 20*time.Second)
	if src, dst := addrs(out); src != laptop || dst != server {
		t.Fatalf("the connector's TUN got %v → %v, want %v → %v (the true source)", src, dst, laptop, server)
	}
	back := exchange(t, "site to client", conn, cli,
		udpPacket(netip.AddrPortFrom(server, 7000), netip.AddrPortFrom(laptop, 40000), "reply"), 10*time.Second)
	if src, dst := addrs(back); src != server || dst != laptop {
		t.Fatalf("the client's TUN got %v → %v, want %v → %v", src, dst, server, laptop)
	}
	if conn.bind.sent.Load() == 0 || cli.bind.sent.Load() == 0 {
		t.Errorf("the agents sent %d and %d datagrams through Seams.Bind", conn.bind.sent.Load(), cli.bind.sent.Load())
	}

	// The host fakes hold each agent's routes into its TUN.
	if r := conn.host.Routes(); !slices.Contains(r, "100.96.0.0/12 dev sy0 table main") {
		t.Errorf("the connector's routes %q lack the device overlay range", r)
	}
	if !routed(cli.host.Routes(), server, "dev sy1 table main src "+laptop.String()) {
		t.Errorf("the client routes no %s into its TUN: %q", server, cli.host.Routes())
	}

	// The control sockets, as the CLI uses them.
	cs := localapi.NewClient("connector", conn.stateDir)
	for _, dir := range []string{conn.stateDir, cli.stateDir} {
		fi, err := os.Lstat(filepath.Join(dir, localapi.SocketFile))
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("control socket in %s: %v, %v; want a socket with mode 0600", dir, fi.Mode(), err)
		}
	}
	if st, err := cs.SetPreferred(ctx, true); err != nil || !st.Preferred || st.Role != "connector" {
		t.Errorf("promote = %+v, %v", st, err)
	}
	if st, err := cs.Status(ctx); err != nil || !st.Preferred || st.Priority != 0 {
		t.Errorf("status after promote = %+v, %v", st, err)
	}
	cc := localapi.NewClient("client", cli.stateDir)
	if v, err := cc.VNets(ctx); err != nil || !slices.ContainsFunc(v, func(v model.VNet) bool { return v.Name == "vnet-a" && v.IsDefault }) {
		t.Errorf("client vnet = %+v, %v", v, err)
	}
	if v, err := cc.SelectVNet(ctx, "vnet-a"); err != nil || v.Name != "vnet-a" {
		t.Errorf("client vnet vnet-a = %+v, %v", v, err)
	}
	if _, err := cc.SetPreferred(ctx, true); !errors.Is(err, model.ErrInvalid) {
		t.Errorf("promote of a client = %v, want invalid", err)
	}

	// A clean stop removes the socket and the routes.
	for _, a := range []*inProcessAgent{cli, conn} {
		if err := a.shutdown(t); err != nil {
			t.Errorf("agent in %s: %v", a.stateDir, err)
		}
		if _, err := os.Lstat(filepath.Join(a.stateDir, localapi.SocketFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the control socket in %s is left after a clean stop: %v", a.stateDir, err)
		}
		if r := a.host.Routes(); len(r) != 0 {
			t.Errorf("routes left after a clean stop: %q", r)
		}
	}
	if _, err := cs.Status(ctx); !errors.Is(err, localapi.ErrNotRunning) {
		t.Errorf("status of the stopped connector = %v, want %v", err, localapi.ErrNotRunning)
	}
}
