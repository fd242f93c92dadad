//go:build linux

package host_test

import (
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/switchyard/switchyard/internal/lab"
	"github.com/switchyard/switchyard/routing/host"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// testHost is a fresh lab namespace holding one end of an up veth pair,
// the link the manager configures.
type testHost struct {
	ifname string
	h      *netlink.Handle
	ops    *host.NetlinkOps
	link   netlink.Link
}

func newTestHost(t *testing.T) *testHost {
	t.Helper()
	l := lab.New(t)
	ns := l.NS("host")
	ifname, _ := l.Link(ns, "", l.NS("peer"), "")
	h, err := netlink.NewHandleAt(ns.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	link, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := host.NewNetlinkOps(ns.Handle())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.Close() })
	return &testHost{ifname: ifname, h: h, ops: ops, link: link}
}

// sysctlKeys are the sysctls the manager changes for the link.
func (th *testHost) sysctlKeys() []string {
	return []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/" + th.ifname + "/rp_filter"}
}

func (th *testHost) sysctls(t *testing.T) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, key := range th.sysctlKeys() {
		v, err := th.ops.GetSysctl(key)
		if err != nil {
			t.Fatal(err)
		}
		m[key] = v
	}
	return m
}

// routes lists the routes through the link, in every table, as "dst table proto".
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
		Interface:     th.ifname,
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
	wantSys := map[string]string{"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1", "net/ipv4/conf/" + th.ifname + "/rp_filter": "2"}
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
		Interface:     th.ifname,
		Routes:        []netip.Prefix{mpp("198.51.100.0/24"), mpp("2001:db8:1::/48")},
		Table:         100,
		Forwarding:    true,
		LooseRPFilter: true,
	}); err != nil {
		t.Fatal(err)
	}
	// crashed is abandoned without Close.
	if err := host.Sweep(th.ops, th.ifname, stateFile); err != nil {
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
