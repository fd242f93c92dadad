package edge

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/store/memstore"
	"github.com/switchyard/switchyard/internal/packettest"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// agentPeer is a wireguard-go device standing in for a connector or client:
// packets written to tun.Outbound leave through the edge, and what the edge
// sends it arrives on tun.Inbound.
type agentPeer struct {
	tun *tuntest.ChannelTUN
	dev *device.Device
	key string // base64 public key
}

func newAgentPeer(t testing.TB, edgeKey wireguard.PublicKey, edgePort uint16) *agentPeer {
	t.Helper()
	priv, err := wireguard.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return startAgentPeer(t, priv, edgeKey, edgePort)
}

// startAgentPeer is newAgentPeer with a given key, for an agent enrolled
// before its device starts.
func startAgentPeer(t testing.TB, priv wireguard.PrivateKey, edgeKey wireguard.PublicKey, edgePort uint16) *agentPeer {
	t.Helper()
	ct := tuntest.NewChannelTUN()
	dev := device.NewDevice(ct.TUN(), conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	t.Cleanup(dev.Close)
	cfg := fmt.Sprintf("private_key=%s\npublic_key=%s\nendpoint=127.0.0.1:%d\npersistent_keepalive_interval=1\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0\n",
		hex.EncodeToString(priv[:]), hex.EncodeToString(edgeKey[:]), edgePort)
	if err := dev.IpcSet(cfg); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	pub := priv.PublicKey()
	return &agentPeer{tun: ct, dev: dev, key: base64.StdEncoding.EncodeToString(pub[:])}
}

// send injects a packet as if the agent's host had routed it into its TUN.
func (a *agentPeer) send(t testing.TB, pkt []byte) {
	t.Helper()
	select {
	case a.tun.Outbound <- pkt:
	case <-time.After(5 * time.Second):
		t.Fatal("agent TUN did not take the packet")
	}
}

// recv waits for a packet from the edge; nil after d.
func (a *agentPeer) recv(d time.Duration) []byte {
	select {
	case p := <-a.tun.Inbound:
		return p
	case <-time.After(d):
		return nil
	}
}

type edgeLab struct {
	reg *registry.Registry
	dp  *dataplane
}

func newEdgeLab(t *testing.T) *edgeLab {
	t.Helper()
	return newEdgeLabClock(t, nil)
}

// newEdgeLabClock is newEdgeLab with the registry on clock now (nil: the
// wall clock).
func newEdgeLabClock(t *testing.T, now func() time.Time) *edgeLab {
	t.Helper()
	dir := t.TempDir()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	id, err := loadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: id.master, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{WGListen: "127.0.0.1:0", OverlayRange: model.DefaultOverlayRange}
	dp, err := startDataplane(cfg, id, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dp.wg.Add(2)
	go func() { defer dp.wg.Done(); dp.follow(ctx) }()
	go func() { defer dp.wg.Done(); dp.watchLiveness(ctx) }()
	t.Cleanup(func() { cancel(); dp.wg.Wait(); dp.ep.Close() })
	return &edgeLab{reg: reg, dp: dp}
}

// tunnel creates a tunnel routing prefixes in vnet ("" for the default) and
// returns it with its secret.
func (l *edgeLab) tunnel(t *testing.T, name, vnet string, prefixes ...string) (model.Tunnel, []byte) {
	t.Helper()
	ctx := context.Background()
	tun, secret, err := l.reg.CreateTunnel(ctx, model.NewTunnel{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prefixes {
		if _, err := l.reg.AddRoute(ctx, model.NewRoute{Network: netip.MustParsePrefix(p), Tunnel: name, VNet: vnet}); err != nil {
			t.Fatal(err)
		}
	}
	return tun, secret
}

func (l *edgeLab) connector(t *testing.T, tunnel string, vnet string, prefixes ...string) *agentPeer {
	t.Helper()
	tun, secret := l.tunnel(t, tunnel, vnet, prefixes...)
	a := newAgentPeer(t, l.dp.ep.PublicKey(), l.dp.ep.Port())
	if _, err := l.reg.EnrollConnector(context.Background(), tun.ID, secret, model.ConnectorEnrollment{PublicKey: a.key}); err != nil {
		t.Fatal(err)
	}
	return a
}

// waitUp waits until the edge has a live session with every agent.
func (l *edgeLab) waitUp(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	up := 0
	for time.Now().Before(deadline) {
		up = 0
		l.dp.mu.Lock()
		for _, s := range l.dp.byKey {
			if s.peer.Up() {
				up++
			}
		}
		l.dp.mu.Unlock()
		if up == n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%d agents up, want %d", up, n)
}

// ping returns an ICMP echo request from src to dst with valid checksums.
func ping(dst, src string) []byte {
	return packettest.Echo(packettest.IP{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}, 1, 1, []byte("ping"))
}

func TestDataplaneForwardsBetweenSites(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	if _, err := l.reg.CreateVNet(ctx, model.NewVNet{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	a := l.connector(t, "site-a", "", "10.1.0.0/16")
	c := l.connector(t, "site-c", "", "10.3.0.0/16")
	b := l.connector(t, "site-b", "other", "10.1.0.0/16")
	// Nudge every device into a handshake; keepalives keep them up.
	for _, p := range []*agentPeer{a, b, c} {
		p.send(t, ping("100.96.0.1", "10.255.255.254"))
	}
	l.waitUp(t, 3)

	// A to C: arrives unchanged but for the TTL.
	sent := ping("10.3.0.5", "10.1.2.3")
	a.send(t, sent)
	got := c.recv(5 * time.Second)
	if got == nil {
		t.Fatal("site C received nothing from site A")
	}
	if src, dst := netip.AddrFrom4([4]byte(got[12:16])), netip.AddrFrom4([4]byte(got[16:20])); src.String() != "10.1.2.3" || dst.String() != "10.3.0.5" {
		t.Fatalf("site C got %s -> %s, want 10.1.2.3 -> 10.3.0.5 untouched", src, dst)
	}
	if got[8] != sent[8]-1 {
		t.Fatalf("TTL %d, want %d", got[8], sent[8]-1)
	}

	// B (other vnet) to C: no route there; B gets an ICMP net unreachable from the edge.
	b.send(t, ping("10.3.0.5", "10.1.2.3"))
	if p := c.recv(300 * time.Millisecond); p != nil {
		t.Fatal("a packet crossed virtual networks")
	}
	icmp := b.recv(5 * time.Second)
	if icmp == nil || icmp[9] != 1 || icmp[20] != 3 || netip.AddrFrom4([4]byte(icmp[12:16])).String() != "100.96.0.1" {
		t.Fatalf("site B got %x, want an ICMP destination unreachable from 100.96.0.1", icmp)
	}

	// A spoofing C's prefix is dropped.
	before := l.dp.router.Stats().Dropped["spoofed"]
	a.send(t, ping("10.3.0.5", "10.3.9.9"))
	if p := c.recv(300 * time.Millisecond); p != nil {
		t.Fatal("a spoofed packet was forwarded")
	}
	if after := l.dp.router.Stats().Dropped["spoofed"]; after != before+1 {
		t.Fatalf("spoofed drops %d -> %d, want one more", before, after)
	}

	// A route moved at run time takes effect without a restart.
	if _, err := l.reg.AddRoute(ctx, model.NewRoute{Network: netip.MustParsePrefix("10.4.0.0/16"), Tunnel: "site-c"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		a.send(t, ping("10.4.0.1", "10.1.2.3"))
		if p := c.recv(100 * time.Millisecond); p != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a new route did not take effect")
		}
	}
}

// TestDataplaneFailsOverBetweenReplicas runs two replicas of one tunnel; when
// the preferred one dies, traffic moves to the other without any control
// plane change.
func TestDataplaneFailsOverBetweenReplicas(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	tun, secret := l.tunnel(t, "site-a", "", "10.1.0.0/16")
	var replicas []*agentPeer
	for i := 0; i < 2; i++ {
		a := newAgentPeer(t, l.dp.ep.PublicKey(), l.dp.ep.Port())
		if _, err := l.reg.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: a.key}); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, a)
	}
	c := l.connector(t, "site-c", "", "10.3.0.0/16")
	for _, p := range append(replicas, c) {
		p.send(t, ping("100.96.0.1", "10.255.255.254"))
	}
	l.waitUp(t, 3)

	// Find the replica that gets the traffic, then kill it.
	c.send(t, ping("10.1.2.3", "10.3.0.5"))
	var active, standby *agentPeer
	select {
	case <-replicas[0].tun.Inbound:
		active, standby = replicas[0], replicas[1]
	case <-replicas[1].tun.Inbound:
		active, standby = replicas[1], replicas[0]
	case <-time.After(5 * time.Second):
		t.Fatal("no replica received site C's packet")
	}
	active.dev.Close()
	killed := time.Now()
	for {
		c.send(t, ping("10.1.2.3", "10.3.0.5"))
		if p := standby.recv(100 * time.Millisecond); p != nil {
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatal("traffic did not fail over to the standby replica")
		}
	}
	t.Logf("failed over %v after the active replica died (liveness timeout %v)", time.Since(killed).Round(10*time.Millisecond), livenessTimeout)
}

// flakyStore is a store whose reads fail with store.ErrUnavailable while
// down is set, and whose change feeds fail when cut is closed, as an etcd
// that went away does.
type flakyStore struct {
	store.Store
	down atomic.Bool

	mu  sync.Mutex
	cut chan struct{} // closed by cutFeeds
}

// cutFeeds makes every running change feed fail.
func (s *flakyStore) cutFeeds() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.cut)
	s.cut = make(chan struct{})
}

func (s *flakyStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.down.Load() {
		return fmt.Errorf("etcd read revision: %w", store.ErrUnavailable)
	}
	return s.Store.View(ctx, fn)
}

func (s *flakyStore) Watch(ctx context.Context, after int64) (<-chan store.Change, error) {
	in, err := s.Store.Watch(ctx, after)
	if err != nil {
		return nil, err
	}
	out := make(chan store.Change)
	s.mu.Lock()
	cut := s.cut
	s.mu.Unlock()
	go func() { // ends with in, when ctx ends
		defer close(out)
		for {
			select {
			case c, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			case <-cut:
				select {
				case out <- store.Change{Err: fmt.Errorf("etcd watch: %w", store.ErrUnavailable)}:
				case <-ctx.Done():
				}
				for range in {
				}
				return
			}
		}
	}()
	return out, nil
}

// TestFollowOutlivesAStoreOutage: the data plane keeps the last state it
// applied while the store cannot answer, at start or after its change feed
// failed, and catches up by itself once the store is back.
func TestFollowOutlivesAStoreOutage(t *testing.T) {
	dir := t.TempDir()
	bs := memstore.New(memstore.Options{})
	t.Cleanup(func() { bs.Close() })
	st := &flakyStore{Store: bs, cut: make(chan struct{})}
	id, err := loadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: id.master})
	if err != nil {
		t.Fatal(err)
	}
	dp, err := startDataplane(Config{WGListen: "127.0.0.1:0", OverlayRange: model.DefaultOverlayRange}, id, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer dp.ep.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	st.down.Store(true)
	go func() { done <- dp.follow(ctx) }()
	running := func(what string) {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("%s: follow returned %v", what, err)
		case <-time.After(time.Second):
		}
	}
	appliedRev := func() int64 {
		if a := dp.applied.Load(); a != nil {
			return a.rev
		}
		return 0
	}
	waitRev := func(what string, rev int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for appliedRev() < rev {
			if time.Now().After(deadline) {
				t.Fatalf("%s: applied revision %d, want %d", what, appliedRev(), rev)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	addRoute := func(p string) int64 {
		t.Helper()
		if _, _, err := reg.CreateTunnel(ctx, model.NewTunnel{Name: "t-" + p[:6]}); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.AddRoute(ctx, model.NewRoute{Network: netip.MustParsePrefix(p), Tunnel: "t-" + p[:6]}); err != nil {
			t.Fatal(err)
		}
		rev, err := bs.Update(ctx, func(store.Tx) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}

	running("store down at start")
	if appliedRev() != 0 {
		t.Fatal("applied a snapshot while the store was down")
	}
	st.down.Store(false)
	waitRev("store back", 1)
	waitRev("a route added", addRoute("192.0.2.0/24"))

	// The feed fails and the store stays down: the last state stays.
	before := appliedRev()
	st.down.Store(true)
	st.cutFeeds()
	rev := addRoute("198.51.100.0/24") // a write through another edge
	running("feed cut, store down")
	if got := appliedRev(); got != before {
		t.Fatalf("applied revision moved from %d to %d with the store down", before, got)
	}
	st.down.Store(false)
	waitRev("store back after the outage", rev)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow after cancel: %v", err)
	}
}
