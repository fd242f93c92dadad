package doctor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/routing/host"
)

// fakeHost is a Host from tables.
type fakeHost struct {
	sysctls map[string]string
	routes  []host.HostRoute
	addrs   []host.HostAddr
}

func (f *fakeHost) GetSysctl(key string) (string, error) {
	v, ok := f.sysctls[key]
	if !ok {
		return "", fmt.Errorf("sysctl %s: %w", key, fs.ErrNotExist)
	}
	return v, nil
}
func (f *fakeHost) Routes() ([]host.HostRoute, error) { return f.routes, nil }
func (f *fakeHost) Addrs() ([]host.HostAddr, error)   { return f.addrs, nil }

// gateway is a connector host with eth0 on 192.0.2.0/24, forwarding on, the
// agent's routes for 198.51.100.0/24 and the overlay in sy0.
func gateway() *fakeHost {
	return &fakeHost{
		sysctls: map[string]string{
			"net/ipv4/ip_forward":          "1",
			"net/ipv6/conf/all/forwarding": "1",
			"net/ipv4/conf/all/rp_filter":  "0",
			"net/ipv4/conf/eth0/rp_filter": "0",
			"net/ipv4/conf/sy0/rp_filter":  "2",
		},
		routes: []host.HostRoute{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0", Protocol: 3},
			{Dst: netip.MustParsePrefix("192.0.2.0/24"), Dev: "eth0", Protocol: 2},
			{Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "sy0", Protocol: host.RouteProtocol},
			{Dst: Overlay, Dev: "sy0", Protocol: host.RouteProtocol},
		},
		addrs: []host.HostAddr{{Prefix: netip.MustParsePrefix("192.0.2.1/24"), Dev: "eth0"}},
	}
}

func run(h Host, prefixes ...string) Report {
	cfg := Config{Role: "connector", TunName: "sy0", Host: h}
	for _, p := range prefixes {
		cfg.Prefixes = append(cfg.Prefixes, netip.MustParsePrefix(p))
	}
	return Run(context.Background(), cfg)
}

// only returns the single check called name, failing the test otherwise.
func only(t *testing.T, r Report, name string) Check {
	t.Helper()
	cs := r.Find(name)
	if len(cs) != 1 {
		t.Fatalf("%d %s checks, want 1: %+v", len(cs), name, r.Checks)
	}
	return cs[0]
}

func TestHealthyGateway(t *testing.T) {
	r := run(gateway())
	for _, c := range r.Checks {
		if c.Name == "edge-api" || c.Name == "clock" {
			if c.Status != Warn || !strings.HasPrefix(c.Detail, "skipped") {
				t.Errorf("%s without a token: %+v, want a skipped warning", c.Name, c)
			}
			continue
		}
		if c.Status != OK {
			t.Errorf("%+v, want ok", c)
		}
	}
	if r.Failed() != 0 {
		t.Errorf("Failed() = %d", r.Failed())
	}
}

func TestForwardingOff(t *testing.T) {
	h := gateway()
	h.sysctls["net/ipv4/ip_forward"] = "0"
	c := only(t, run(h), "forwarding")
	if c.Status != Fail || c.Fix != "sysctl -w net.ipv4.ip_forward=1" {
		t.Errorf("%+v", c)
	}
	// IPv6 forwarding is checked only when the site has IPv6.
	h.sysctls["net/ipv4/ip_forward"] = "1"
	h.sysctls["net/ipv6/conf/all/forwarding"] = "0"
	if c := only(t, run(h), "forwarding"); c.Status != OK {
		t.Errorf("IPv4-only site: %+v", c)
	}
	cs := run(h, "2001:db8:1::/48").Find("forwarding")
	if len(cs) != 2 || cs[1].Status != Fail || cs[1].Fix != "sysctl -w net.ipv6.conf.all.forwarding=1" {
		t.Errorf("IPv6 site: %+v", cs)
	}
	// A client does not forward.
	r := Run(context.Background(), Config{Role: "client", TunName: "sy1", Host: h})
	if cs := r.Find("forwarding"); len(cs) != 0 {
		t.Errorf("client: %+v", cs)
	}
}

func TestRPFilterStrict(t *testing.T) {
	h := gateway()
	h.sysctls["net/ipv4/conf/eth0/rp_filter"] = "1"
	var eth0, sy0 Check
	for _, c := range run(h).Find("rp_filter") {
		switch {
		case strings.Contains(c.Detail, "eth0"):
			eth0 = c
		case strings.Contains(c.Detail, "sy0"):
			sy0 = c
		}
	}
	if eth0.Status != Warn || eth0.Fix != "sysctl -w net.ipv4.conf.eth0.rp_filter=2" {
		t.Errorf("eth0: %+v", eth0)
	}
	if sy0.Status != OK {
		t.Errorf("sy0: %+v", sy0)
	}
	// conf.all = 1 makes every interface strict: the fix is conf.all.
	h = gateway()
	h.sysctls["net/ipv4/conf/all/rp_filter"] = "1"
	for _, c := range run(h).Find("rp_filter") {
		if c.Status != Warn || c.Fix != "sysctl -w net.ipv4.conf.all.rp_filter=2" {
			t.Errorf("all strict: %+v", c)
		}
	}
}

func TestRouteConflicts(t *testing.T) {
	tests := []struct {
		name  string
		route host.HostRoute
		addr  string // on eth1, with the route as its connected route
		fix   string // "" means no conflict
	}{
		{"more specific than a tunnel prefix", host.HostRoute{Dst: netip.MustParsePrefix("198.51.100.128/25"), Dev: "eth0", Protocol: 3},
			"", "ip route del 198.51.100.128/25 dev eth0"},
		{"same as a --prefix", host.HostRoute{Dst: netip.MustParsePrefix("203.0.113.0/24"), Dev: "eth0", Protocol: 4},
			"", "ip route del 203.0.113.0/24 dev eth0"},
		{"inside the overlay", host.HostRoute{Dst: netip.MustParsePrefix("100.100.0.0/16"), Dev: "eth1", Protocol: 2},
			"100.100.0.1/16", "ip addr del 100.100.0.1/16 dev eth1"},
		{"less specific loses to the tunnel's", host.HostRoute{Dst: netip.MustParsePrefix("198.51.0.0/16"), Dev: "eth0", Protocol: 3},
			"", ""},
		{"another table", host.HostRoute{Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth0", Table: 100, Protocol: 3},
			"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := gateway()
			h.routes = append(h.routes, tt.route)
			if tt.addr != "" {
				h.addrs = append(h.addrs, host.HostAddr{Prefix: netip.MustParsePrefix(tt.addr), Dev: "eth1"})
			}
			c := only(t, run(h, "203.0.113.0/24"), "route-conflict")
			if tt.fix == "" {
				if c.Status != OK {
					t.Errorf("%+v, want ok", c)
				}
				return
			}
			if c.Status != Fail || c.Fix != tt.fix {
				t.Errorf("%+v, want fail with fix %q", c, tt.fix)
			}
		})
	}
}

// fakeDaemon answers Status from fields.
type fakeDaemon struct {
	st  localapi.Status
	err error
}

func (d fakeDaemon) Status(context.Context) (localapi.Status, error) { return d.st, d.err }

type notRunningErr struct{}

func (notRunningErr) Error() string        { return "no connector running" }
func (notRunningErr) Is(target error) bool { return target == localapi.ErrNotRunning }

func TestDaemon(t *testing.T) {
	tests := []struct {
		d    fakeDaemon
		want Status
	}{
		{fakeDaemon{st: localapi.Status{Role: "connector", PID: 7, Healthy: true}}, OK},
		{fakeDaemon{st: localapi.Status{Role: "connector", PID: 7}}, Fail},
		{fakeDaemon{err: notRunningErr{}}, Warn},
		{fakeDaemon{err: errors.New("read: connection reset")}, Fail},
	}
	for _, tt := range tests {
		r := Run(context.Background(), Config{Role: "connector", Daemon: tt.d})
		if c := r.Find("daemon")[0]; c.Status != tt.want || (c.Status != OK && c.Fix == "") {
			t.Errorf("%+v: %+v, want %s with a fix", tt.d, c, tt.want)
		}
	}
}

func TestEdgeAndClock(t *testing.T) {
	edgeNow := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", edgeNow.Format(http.TimeFormat))
		http.NotFound(w, r)
	}))
	defer srv.Close()
	target := edgeTarget{api: srv.URL}
	for _, tt := range []struct {
		skew time.Duration
		want Status
	}{{time.Second, OK}, {-10 * time.Second, Warn}, {2 * time.Minute, Fail}} {
		cs := edge(context.Background(), target, srv.Client(), func() time.Time { return edgeNow.Add(tt.skew) })
		if len(cs) != 2 || cs[0].Status != OK || cs[1].Name != "clock" || cs[1].Status != tt.want {
			t.Errorf("skew %s: %+v, want edge-api ok and clock %s", tt.skew, cs, tt.want)
		}
	}
	srv.Close()
	cs := edge(context.Background(), target, srv.Client(), time.Now)
	if len(cs) != 1 || cs[0].Status != Fail {
		t.Errorf("edge down: %+v", cs)
	}
}

func TestBadToken(t *testing.T) {
	r := Run(context.Background(), Config{Role: "connector", Token: "not-a-token"})
	if c := only(t, r, "token"); c.Status != Fail {
		t.Errorf("%+v", c)
	}
	if len(r.Find("edge-api")) != 0 {
		t.Errorf("edge checked with a bad token: %+v", r.Checks)
	}
}

func TestSysctlFixVLAN(t *testing.T) {
	if got, want := sysctlFix("net/ipv4/conf/eth0.100/rp_filter", "2"), "sysctl -w net/ipv4/conf/eth0.100/rp_filter=2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// firewallHost is a gateway with a forward-hook ruleset.
type firewallHost struct {
	*fakeHost
	chains []host.ForwardChain
}

func (f firewallHost) ForwardChains() ([]host.ForwardChain, error) { return f.chains, nil }

func TestFirewall(t *testing.T) {
	tests := []struct {
		name  string
		chain host.ForwardChain
		fixes []string
	}{
		{"policy accept", host.ForwardChain{Family: "inet", Table: "filter", Chain: "forward"}, nil},
		{"drop, both accepted", host.ForwardChain{Family: "inet", Table: "filter", Chain: "forward", PolicyDrop: true,
			AcceptIn: []string{"sy0"}, AcceptOut: []string{"sy*"}}, nil},
		{"drop, none accepted", host.ForwardChain{Family: "inet", Table: "fw", Chain: "fwd", PolicyDrop: true, AcceptIn: []string{"eth0"}},
			[]string{"nft insert rule inet fw fwd iifname sy0 accept", "nft insert rule inet fw fwd oifname sy0 accept"}},
		{"iptables-nft, out missing", host.ForwardChain{Family: "ip", Table: "filter", Chain: "FORWARD", PolicyDrop: true, IPTables: true,
			AcceptIn: []string{"sy0"}}, []string{"iptables -I FORWARD -o sy0 -j ACCEPT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(firewallHost{gateway(), []host.ForwardChain{tt.chain}})
			cs := r.Find("firewall")
			var fixes []string
			for _, c := range cs {
				if c.Status == Fail {
					fixes = append(fixes, c.Fix)
				}
			}
			if !slices.Equal(fixes, tt.fixes) {
				t.Errorf("fixes %q, want %q (%+v)", fixes, tt.fixes, cs)
			}
		})
	}
}

func TestPathMTU(t *testing.T) {
	done := &localapi.PathMTU{AgentToEdge: 1400, EdgeToAgent: 1380, State: localapi.PathMTUDone}
	if c := pathMTU(done, "sy0", 1420); c.Status != Warn || c.Fix != "ip link set dev sy0 mtu 1380" {
		t.Errorf("TUN above the path: %+v", c)
	}
	if c := pathMTU(done, "sy0", 1380); c.Status != OK {
		t.Errorf("TUN at the path: %+v", c)
	}
	if c := pathMTU(&localapi.PathMTU{State: localapi.PathMTUProbing}, "sy0", 1420); c.Status != OK {
		t.Errorf("probing: %+v", c)
	}
}

func TestEdgePinnedCA(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	cs := edge(context.Background(), edgeTarget{api: srv.URL, pin: pki.Pin(ca.Cert)}, nil, time.Now)
	if len(cs) != 2 || cs[0].Status != OK || cs[1].Status != OK {
		t.Errorf("pinned CA: %+v", cs)
	}
	other, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cs = edge(context.Background(), edgeTarget{api: srv.URL, pin: pki.Pin(other.Cert)}, nil, time.Now)
	if len(cs) != 1 || cs[0].Status != Fail {
		t.Errorf("another CA's pin: %+v", cs)
	}
}
