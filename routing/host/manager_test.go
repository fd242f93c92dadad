package host_test

import (
	"errors"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/routing/host"
	"github.com/switchyard/switchyard/routing/host/hosttest"
)

var mpp = netip.MustParsePrefix

func newFake() *hosttest.Fake {
	f := hosttest.New()
	f.AddLink("sy0", 7)
	f.AddLink("sy1", 8)
	return f
}

// states are applied in order by TestManagerGolden; want is the log each
// produces.
var states = []struct {
	name string
	cfg  *host.Config
	want string
}{
	{
		name: "A: routes and forwarding",
		cfg: &host.Config{
			Interface:  "sy0",
			Routes:     []netip.Prefix{mpp("198.51.100.0/24"), mpp("2001:db8:1::/48"), mpp("192.0.2.0/25")},
			Forwarding: true,
		},
		want: `
route replace 192.0.2.0/25 dev sy0 table main
route replace 198.51.100.0/24 dev sy0 table main
route replace 2001:db8:1::/48 dev sy0 table main
sysctl net/ipv4/ip_forward=1
sysctl net/ipv6/conf/all/forwarding=1
`,
	},
	{
		name: "B: swap a route, add rp_filter, host bits masked",
		cfg: &host.Config{
			Interface:     "sy0",
			Routes:        []netip.Prefix{mpp("198.51.100.7/24"), mpp("2001:db8:1::/48"), mpp("203.0.113.0/24")},
			Forwarding:    true,
			LooseRPFilter: true,
		},
		want: `
route replace 203.0.113.0/24 dev sy0 table main
route del 192.0.2.0/25 dev sy0 table main
sysctl net/ipv4/conf/sy0/rp_filter=2
`,
	},
	{
		name: "C: other table, no forwarding",
		cfg: &host.Config{
			Interface:     "sy0",
			Routes:        []netip.Prefix{mpp("198.51.100.0/24"), mpp("2001:db8:1::/48")},
			Table:         52,
			LooseRPFilter: true,
		},
		want: `
route replace 198.51.100.0/24 dev sy0 table 52
route replace 2001:db8:1::/48 dev sy0 table 52
route del 198.51.100.0/24 dev sy0 table main
route del 203.0.113.0/24 dev sy0 table main
route del 2001:db8:1::/48 dev sy0 table main
sysctl net/ipv4/ip_forward=0
sysctl net/ipv6/conf/all/forwarding=0
`,
	},
	{
		name: "C again: no-op",
		cfg: &host.Config{
			Interface:     "sy0",
			Routes:        []netip.Prefix{mpp("2001:db8:1::/48"), mpp("198.51.100.0/24")},
			Table:         52,
			LooseRPFilter: true,
		},
		want: ``,
	},
	{
		name: "empty",
		cfg:  &host.Config{},
		want: `
route del 198.51.100.0/24 dev sy0 table 52
route del 2001:db8:1::/48 dev sy0 table 52
sysctl net/ipv4/conf/sy0/rp_filter=1
`,
	},
}

func TestManagerGolden(t *testing.T) {
	f := newFake()
	before := f.Sysctls()
	m, err := host.NewManager(f, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if err := m.Set(st.cfg); err != nil {
			t.Fatalf("%s: Set: %v", st.name, err)
		}
		got := strings.Join(f.TakeLog(), "\n")
		if want := strings.TrimSpace(st.want); got != want {
			t.Errorf("%s: ops:\n%s\nwant:\n%s", st.name, got, want)
		}
		checkState(t, st.name, f, st.cfg, before)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if log := f.TakeLog(); len(log) != 0 {
		t.Errorf("Close after empty config did %q", log)
	}
	if err := m.Set(states[0].cfg); !errors.Is(err, host.ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
}

// checkState compares the fake's routes and sysctls with what cfg asks for
// (everything else at its original value).
func checkState(t *testing.T, name string, f *hosttest.Fake, cfg *host.Config, orig map[string]string) {
	t.Helper()
	var want []string
	for _, p := range cfg.Routes {
		table := "main"
		if cfg.Table != 0 {
			table = "52"
		}
		want = append(want, p.Masked().String()+" dev "+cfg.Interface+" table "+table)
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if got := f.Routes(); !slices.Equal(got, want) {
		t.Errorf("%s: routes %q, want %q", name, got, want)
	}
	wantSys := maps.Clone(orig)
	if cfg.Forwarding {
		wantSys["net/ipv4/ip_forward"] = "1"
		wantSys["net/ipv6/conf/all/forwarding"] = "1"
	}
	if cfg.LooseRPFilter {
		wantSys["net/ipv4/conf/"+cfg.Interface+"/rp_filter"] = "2"
	}
	if got := f.Sysctls(); !maps.Equal(got, wantSys) {
		t.Errorf("%s: sysctls %v, want %v", name, got, wantSys)
	}
}

// TestManagerRandomOrder applies the golden states, plus a state on another
// interface, in random orders and checks that the host always matches the
// last one applied, and that Close restores the start.
func TestManagerRandomOrder(t *testing.T) {
	cfgs := []*host.Config{{
		Interface:     "sy1",
		Routes:        []netip.Prefix{mpp("198.51.100.0/24"), mpp("2001:db8:2::/64")},
		Table:         52,
		Forwarding:    true,
		LooseRPFilter: true,
	}}
	for _, st := range states {
		cfgs = append(cfgs, st.cfg)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 50 {
		f := newFake()
		orig := f.Sysctls()
		m, err := host.NewManager(f, "")
		if err != nil {
			t.Fatal(err)
		}
		for range 8 {
			cfg := cfgs[rng.IntN(len(cfgs))]
			if err := m.Set(cfg); err != nil {
				t.Fatalf("run %d: Set: %v", run, err)
			}
			checkState(t, "run", f, cfg, orig)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		checkState(t, "after Close", f, &host.Config{}, orig)
		if t.Failed() {
			t.Fatalf("run %d failed", run)
		}
	}
}

// TestManagerPartialFailure fails one route add and one sysctl write, and
// checks that the old routes stay, that the error names the operation, and
// that a retry converges.
func TestManagerPartialFailure(t *testing.T) {
	f := newFake()
	orig := f.Sysctls()
	m, err := host.NewManager(f, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(states[0].cfg); err != nil {
		t.Fatal(err)
	}
	f.TakeLog()
	errBoom := errors.New("boom")
	f.Fail = func(op string) error {
		if op == "route replace 203.0.113.0/24 dev sy0 table main" || op == "sysctl net/ipv4/conf/sy0/rp_filter=2" {
			return errBoom
		}
		return nil
	}
	err = m.Set(states[1].cfg)
	if !errors.Is(err, errBoom) {
		t.Fatalf("Set = %v, want errBoom", err)
	}
	for _, want := range []string{"add route 203.0.113.0/24 dev sy0", "set sysctl net/ipv4/conf/sy0/rp_filter=2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	got := strings.Join(f.TakeLog(), "\n")
	want := "route replace 203.0.113.0/24 dev sy0 table main FAILED\nsysctl net/ipv4/conf/sy0/rp_filter=2 FAILED"
	if got != want {
		t.Errorf("ops:\n%s\nwant:\n%s", got, want)
	}
	// No route was deleted while an add was failing.
	if routes := f.Routes(); len(routes) != 3 || !slices.Contains(routes, "192.0.2.0/25 dev sy0 table main") {
		t.Errorf("routes after failed Set: %q", routes)
	}
	f.Fail = nil
	if err := m.Set(states[1].cfg); err != nil {
		t.Fatalf("retry: %v", err)
	}
	checkState(t, "retry", f, states[1].cfg, orig)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	checkState(t, "close", f, &host.Config{}, orig)
}

func TestManagerConfigErrors(t *testing.T) {
	f := newFake()
	m, err := host.NewManager(f, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []*host.Config{
		{Interface: "nope0", Routes: []netip.Prefix{mpp("192.0.2.0/24")}},
		{Interface: "", Routes: []netip.Prefix{mpp("192.0.2.0/24")}},
		{Interface: "../x", LooseRPFilter: true},
		{Interface: "sy0", Routes: []netip.Prefix{{}}},
		{Interface: "sy0", Routes: []netip.Prefix{mpp("192.0.2.0/24")}, Table: -1},
	} {
		if err := m.Set(cfg); err == nil {
			t.Errorf("Set(%+v) succeeded, want error", cfg)
		}
	}
	if log := f.TakeLog(); len(log) != 0 {
		t.Errorf("invalid configs changed the host: %q", log)
	}
	if err := m.Set(&host.Config{Interface: "nope0", Routes: []netip.Prefix{mpp("192.0.2.0/24")}}); !errors.Is(err, host.ErrLinkNotFound) {
		t.Errorf("missing link error = %v, want ErrLinkNotFound", err)
	}
}

// TestSweep simulates a crash: a Manager changes the host and is never
// closed; Sweep removes its routes (not foreign ones) and restores the
// sysctls from the state file.
func TestSweep(t *testing.T) {
	f := newFake()
	orig := f.Sysctls()
	stateFile := filepath.Join(t.TempDir(), "host-state.json")
	foreign := host.Route{Dst: mpp("192.0.2.128/25"), Link: 7}
	f.PresetRoute(foreign, false)

	crashed, err := host.NewManager(f, stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.Set(states[2].cfg); err != nil { // table 52, rp_filter
		t.Fatal(err)
	}
	if err := crashed.Set(states[1].cfg); err != nil { // main table, forwarding
		t.Fatal(err)
	}
	if _, err := os.Stat(stateFile); err != nil {
		t.Fatalf("state file: %v", err)
	}
	f.TakeLog()

	if err := host.Sweep(f, "sy0", stateFile); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(f.TakeLog(), "\n")
	want := strings.TrimSpace(`
route del 198.51.100.0/24 dev sy0 table main
route del 203.0.113.0/24 dev sy0 table main
route del 2001:db8:1::/48 dev sy0 table main
sysctl net/ipv4/conf/sy0/rp_filter=1
sysctl net/ipv4/ip_forward=0
sysctl net/ipv6/conf/all/forwarding=0`)
	if got != want {
		t.Errorf("sweep ops:\n%s\nwant:\n%s", got, want)
	}
	if routes := f.Routes(); !slices.Equal(routes, []string{"192.0.2.128/25 dev sy0 table main (foreign)"}) {
		t.Errorf("routes after sweep: %q", routes)
	}
	if got := f.Sysctls(); !maps.Equal(got, orig) {
		t.Errorf("sysctls after sweep %v, want %v", got, orig)
	}
	if _, err := os.Stat(stateFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file still there after sweep: %v", err)
	}
	// Nothing left: a second sweep, and one for a missing link, do nothing.
	if err := host.Sweep(f, "sy0", stateFile); err != nil {
		t.Fatal(err)
	}
	if err := host.Sweep(f, "gone0", stateFile); err != nil {
		t.Fatal(err)
	}
	if log := f.TakeLog(); len(log) != 0 {
		t.Errorf("second sweep did %q", log)
	}
}

// TestManagerAdoptsState checks that a Manager started over a stale state
// file keeps the recorded originals rather than the current values.
func TestManagerAdoptsState(t *testing.T) {
	f := newFake()
	stateFile := filepath.Join(t.TempDir(), "host-state.json")
	crashed, err := host.NewManager(f, stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.Set(&host.Config{Forwarding: true}); err != nil {
		t.Fatal(err)
	}
	m, err := host.NewManager(f, stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(&host.Config{Forwarding: true}); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.Sysctls()["net/ipv4/ip_forward"]; got != "0" {
		t.Errorf("ip_forward after Close = %s, want the original 0", got)
	}
}

// TestManagerLinkGone checks that a Manager whose interface disappeared
// (the TUN was closed) still reaches the empty state.
func TestManagerLinkGone(t *testing.T) {
	f := newFake()
	orig := f.Sysctls()
	m, err := host.NewManager(f, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &host.Config{Interface: "sy1", Routes: []netip.Prefix{mpp("192.0.2.0/24")}, LooseRPFilter: true}
	if err := m.Set(cfg); err != nil {
		t.Fatal(err)
	}
	f.RemoveLink("sy1")
	delete(orig, "net/ipv4/conf/sy1/rp_filter")
	if err := m.Close(); err != nil {
		t.Fatalf("Close after the link vanished: %v", err)
	}
	if got := f.Sysctls(); !maps.Equal(got, orig) {
		t.Errorf("sysctls = %v, want %v", got, orig)
	}
}

// TestManagerPreferredSource sets and changes the source addresses of the
// routes: a change replaces each route in place, never deleting it first.
func TestManagerPreferredSource(t *testing.T) {
	f := newFake()
	m, err := host.NewManager(f, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &host.Config{Interface: "sy0", Routes: []netip.Prefix{mpp("198.51.100.0/24"), mpp("2001:db8:3::/48")},
		Src4: netip.MustParseAddr("192.0.2.1"), Src6: netip.MustParseAddr("2001:db8:1::1")}
	if err := m.Set(cfg); err != nil {
		t.Fatal(err)
	}
	f.TakeLog()
	cfg.Src4 = netip.MustParseAddr("192.0.2.9")
	if err := m.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(f.TakeLog(), "\n"), "route replace 198.51.100.0/24 dev sy0 table main src 192.0.2.9"; got != want {
		t.Fatalf("changing the IPv4 source logged\n%s\nwant\n%s", got, want)
	}
	if got := strings.Join(f.Routes(), "\n"); !strings.Contains(got, "198.51.100.0/24 dev sy0 table main src 192.0.2.9") || !strings.Contains(got, "src 2001:db8:1::1") {
		t.Fatalf("routes:\n%s", got)
	}
	cfg.Src6 = netip.MustParseAddr("192.0.2.1")
	if err := m.Set(cfg); err == nil {
		t.Fatal("an IPv4 source for IPv6 routes was accepted")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.Routes(); len(got) != 0 {
		t.Fatalf("routes left after Close: %v", got)
	}
}
