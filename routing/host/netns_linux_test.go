//go:build linux

package host_test

import (
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/switchyard/switchyard/routing/host"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newNetns creates a network namespace without moving the test's thread
// into it, and closes it (destroying it and its links) in t.Cleanup.
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	type result struct {
		ns  netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with this goroutine.
			ns.Close()
			done <- result{err: err}
			return
		}
		runtime.UnlockOSThread()
		done <- result{ns: ns}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("create netns: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	return r.ns
}

// testHost is a fresh namespace holding an up veth link "sy0".
type testHost struct {
	ns   netns.NsHandle
	h    *netlink.Handle
	ops  *host.NetlinkOps
	link netlink.Link
}

func newTestHost(t *testing.T) *testHost {
	t.Helper()
	ns := newNetns(t)
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	// A veth pair: unlike dummy it needs no module beyond what containers
	// usually have, and unlike a TUN it is created purely through netlink.
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sy0", MTU: 1420}, PeerName: "sy0peer"}); err != nil {
		t.Fatalf("add veth sy0: %v", err)
	}
	peer, err := h.LinkByName("sy0peer")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		t.Fatalf("set sy0peer up: %v", err)
	}
	link, err := h.LinkByName("sy0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatalf("set sy0 up: %v", err)
	}
	ops, err := host.NewNetlinkOps(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.Close() })
	return &testHost{ns: ns, h: h, ops: ops, link: link}
}

var netnsSysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv6/conf/all/forwarding",
	"net/ipv4/conf/sy0/rp_filter",
}

func (th *testHost) sysctls(t *testing.T) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, key := range netnsSysctls {
		v, err := th.ops.GetSysctl(key)
		if err != nil {
			t.Fatal(err)
		}
		m[key] = v
	}
	return m
}

// routes lists the routes through sy0, in every table, as "dst table proto".
func (th *testHost) routes(t *testing.T, proto int) []string {
	t.Helper()
	filter := &netlink.Route{LinkIndex: th.link.Attrs().Index, Protocol: netlink.RouteProtocol(proto), Table: unix.RT_TABLE_UNSPEC}
	rs, err := th.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Dst.String()+" table "+strconv.Itoa(r.Table))
	}
	slices.Sort(out)
	return out
}

// rootForwarding reads the test process's own ip_forward, to check the
// tests never change the root namespace.
func rootForwarding(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNetlinkManagerNetns(t *testing.T) {
	th := newTestHost(t)
	rootBefore := rootForwarding(t)
	orig := th.sysctls(t)
	m, err := host.NewManager(th.ops, filepath.Join(t.TempDir(), "host-state.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &host.Config{
		Interface:     "sy0",
		Routes:        []netip.Prefix{mpp("198.51.100.0/24"), mpp("2001:db8:1::/48")},
		Forwarding:    true,
		LooseRPFilter: true,
	}
	if err := m.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := th.routes(t, host.RouteProtocol), []string{"198.51.100.0/24 table 254", "2001:db8:1::/48 table 254"}; !slices.Equal(got, want) {
		t.Errorf("routes after Set = %q, want %q", got, want)
	}
	wantSys := map[string]string{"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1", "net/ipv4/conf/sy0/rp_filter": "2"}
	if got := th.sysctls(t); !maps.Equal(got, wantSys) {
		t.Errorf("sysctls after Set = %v, want %v", got, wantSys)
	}
	if got := rootForwarding(t); got != rootBefore {
		t.Fatalf("root namespace ip_forward changed from %q to %q", rootBefore, got)
	}

	// Move to table 100 and drop a prefix.
	cfg.Table = 100
	cfg.Routes = cfg.Routes[1:]
	if err := m.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := th.routes(t, host.RouteProtocol), []string{"2001:db8:1::/48 table 100"}; !slices.Equal(got, want) {
		t.Errorf("routes after second Set = %q, want %q", got, want)
	}

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := th.routes(t, host.RouteProtocol); len(got) != 0 {
		t.Errorf("routes after Close = %q, want none", got)
	}
	if got := th.sysctls(t); !maps.Equal(got, orig) {
		t.Errorf("sysctls after Close = %v, want the originals %v", got, orig)
	}
}

func TestNetlinkSweepNetns(t *testing.T) {
	th := newTestHost(t)
	orig := th.sysctls(t)
	stateFile := filepath.Join(t.TempDir(), "host-state.json")
	// A route someone else installed on the same link must survive.
	foreign := &netlink.Route{
		LinkIndex: th.link.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4(203, 0, 113, 0), Mask: net.CIDRMask(24, 32)},
		Scope:     netlink.SCOPE_LINK,
		Protocol:  unix.RTPROT_STATIC,
	}
	if err := th.h.RouteAdd(foreign); err != nil {
		t.Fatal(err)
	}
	crashed, err := host.NewManager(th.ops, stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.Set(&host.Config{
		Interface:     "sy0",
		Routes:        []netip.Prefix{mpp("198.51.100.0/24"), mpp("2001:db8:1::/48")},
		Table:         100,
		Forwarding:    true,
		LooseRPFilter: true,
	}); err != nil {
		t.Fatal(err)
	}
	// crashed is abandoned without Close.
	if err := host.Sweep(th.ops, "sy0", stateFile); err != nil {
		t.Fatal(err)
	}
	if got := th.routes(t, host.RouteProtocol); len(got) != 0 {
		t.Errorf("marked routes after Sweep = %q, want none", got)
	}
	if got := th.routes(t, unix.RTPROT_STATIC); !slices.Equal(got, []string{"203.0.113.0/24 table 254"}) {
		t.Errorf("foreign routes after Sweep = %q", got)
	}
	if got := th.sysctls(t); !maps.Equal(got, orig) {
		t.Errorf("sysctls after Sweep = %v, want the originals %v", got, orig)
	}
}
