//go:build netbench && linux

package bench

// The benchmark lab: every path of the issue gets its own set of network
// namespaces, built, measured and removed in one subtest.
//
//	hosta 10.1.0.2 ─ gwa ─┐                 ┌─ gwb ─ hostb 10.2.0.2 (iperf3 -s)
//	          10.1.0.1/24 │ 203.0.113.0/30s │ 10.2.0.1/24
//	                      └──── wan ────────┘
//	                    hub/edge ┘   └ client
//
// The cross-edge path adds edge 2 and an etcd member on the WAN
// (trunk_linux_test.go).
//
// Traffic never leaves the lab's namespaces. Run it with `make bench`, which
// builds bin/switchyard and sets the BENCH_* variables described in README.

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/lab"
	"github.com/switchyard/switchyard/internal/testbin"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// TestMain runs the binary as an etcd member when MemberCommand started it,
// as a relay when startRelay did, else the tests.
func TestMain(m *testing.M) {
	etcdtest.MemberMain() // this binary run again as the cross-edge path's etcd member
	relayMain()           // or as the relay path's relay
	os.Exit(m.Run())
}

// config is the bench's knobs, from the environment.
type config struct {
	reps, seconds, pings int
	budget               time.Duration
	paths                map[string]bool // empty: all
	bin, out, micro      string
	profile              bool   // BENCH_PROFILE=1 or rate: record the edge's CPU profile (edge-cpu.pprof for WireGuard, edge-masque-cpu.pprof for MASQUE)
	profileLoad          Load   // the run profiled: 4 streams, or the offered rate (BENCH_PROFILE=rate)
	wgGomod              string // BENCH_WGGO_GOMOD: a wireguard-go built from go.mod's version, measured too
	masqueTest           string // BENCH_MASQUE_TEST: transport/masque's test binary, whose BenchmarkDatagramFloor the lab runs
	debian               bool   // BENCH_DEBIAN=1: also Debian's wireguard-go (a footnote)
	rate                 string // BENCH_RATE: iperf3 -b of the offered-rate run, "0" to skip
	idle                 IdlePolicy
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func loadConfig(t *testing.T) config {
	quick := os.Getenv("BENCH_QUICK") == "1"
	c := config{reps: 5, seconds: 3, pings: 100, budget: 13 * time.Minute, rate: "700M",
		idle: IdlePolicy{Threshold: 0.1, Window: 2 * time.Second, Max: 60 * time.Second}}
	if quick {
		c.reps, c.seconds, c.pings = 1, 1, 20
	}
	c.reps = envInt(t, "BENCH_REPS", c.reps)
	c.seconds = envInt(t, "BENCH_SECONDS", c.seconds)
	c.pings = envInt(t, "BENCH_PINGS", c.pings)
	if v := os.Getenv("BENCH_RATE"); v != "" {
		c.rate = v
	}
	c.idle.Max = time.Duration(envInt(t, "BENCH_IDLE_MAX", int(c.idle.Max/time.Second))) * time.Second
	if v := os.Getenv("BENCH_IDLE_PCT"); v != "" {
		pct, err := strconv.ParseFloat(v, 64)
		if err != nil || pct <= 0 {
			t.Fatalf("BENCH_IDLE_PCT=%q: want a positive percentage of one core", v)
		}
		c.idle.Threshold = pct / 100
	}
	c.debian = os.Getenv("BENCH_DEBIAN") == "1"
	// The default budget is 13 minutes, or half again what the runs asked for
	// should take (9 paths, each 4 runs of iperf3 plus pings per repetition,
	// and the wait for an idle machine).
	perRep := time.Duration(4*c.seconds+c.pings/50+4) * time.Second
	c.budget = max(c.budget, 9*(time.Duration(c.reps)*perRep+15*time.Second+c.idle.Max)*3/2)
	if v := os.Getenv("BENCH_BUDGET"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("BENCH_BUDGET=%q: %v", v, err)
		}
		c.budget = d
	}
	c.paths = map[string]bool{}
	for _, p := range strings.FieldsFunc(os.Getenv("BENCH_PATHS"), func(r rune) bool { return r == ',' || r == ' ' }) {
		c.paths[p] = true
	}
	c.profile, c.profileLoad = os.Getenv("BENCH_PROFILE") == "1", LoadTCP4
	if os.Getenv("BENCH_PROFILE") == "rate" {
		c.profile, c.profileLoad = true, LoadRate
	}
	c.wgGomod = os.Getenv("BENCH_WGGO_GOMOD")
	c.masqueTest = os.Getenv("BENCH_MASQUE_TEST")
	c.bin, c.out, c.micro = os.Getenv("BENCH_BIN"), os.Getenv("BENCH_OUT"), os.Getenv("BENCH_MICRO_FILE")
	if c.out == "" {
		c.out = filepath.Join(t.TempDir(), "results.json")
	}
	return c
}

func (c config) want(paths ...string) bool {
	if len(c.paths) == 0 {
		return true
	}
	for _, p := range paths {
		if c.paths[p] {
			return true
		}
	}
	return false
}

// TestNetBench measures every path and prints the table; it asserts nothing
// about speed. Ctrl-C (SIGINT) or SIGTERM stops it between or during runs,
// and the lab is removed either way.
func TestNetBench(t *testing.T) {
	cfg := loadConfig(t)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.budget)
	defer cancel()

	res := &Results{Started: time.Now(), Reps: cfg.reps, Seconds: cfg.seconds,
		Idle: IdlePolicyJSON{Threshold: cfg.idle.Threshold, Window: cfg.idle.Window.Seconds(), Max: cfg.idle.Max.Seconds()}}
	if cfg.rate != "0" {
		res.Rate = cfg.rate
	}
	res.Host.CPUs = runtime.NumCPU()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		res.Host.Kernel = strings.TrimSpace(string(b))
	}
	if cfg.micro != "" {
		b, err := os.ReadFile(cfg.micro)
		if err != nil { // BENCH_MICRO=0 on a fresh checkout: report the lab alone
			t.Logf("no Go benchmark results (%v); their targets read \"not measured\"", err)
		}
		res.Micro = ParseGoBench(b)
	}

	// The crypto floor, measured in this run on an idle machine as the paths are.
	floorCPU := 500 * time.Millisecond
	if os.Getenv("BENCH_QUICK") == "1" {
		floorCPU = 100 * time.Millisecond
	}
	fw := waitIdle(ctx, cfg, "crypto floor")
	res.Floor = measureFloor(floorSize, floorCPU, cfg.reps)
	res.Floor.Idle = fw
	fmt.Printf("== crypto floor: Open %s + Seal %s = %s s/GB at %d B\n", res.Floor.Open.Format(2), res.Floor.Seal.Format(2), res.Floor.Total.Format(2), floorSize)

	if cfg.masqueTest != "" && cfg.want(PathSiteToSiteMASQUE) {
		qw := waitIdle(ctx, cfg, "quic-go datagram floor")
		f, err := measureQUICFloor(ctx, cfg)
		if err != nil {
			t.Errorf("quic-go datagram floor: %v", err)
		} else {
			f.Idle, res.QUICFloor = qw, f
			fmt.Printf("== quic-go datagram floor: %s s/GB, %s context switches per GB, at %s Gbps\n", f.CPU.Format(2), f.Switches.Format(0), f.Gbps.Format(2))
		}
	}

	if os.Geteuid() != 0 {
		t.Log("not root: the network-namespace lab is skipped; the table shows the Go benchmarks only")
	} else {
		if err := needTools(cfg.debian); err != nil {
			t.Fatal(err)
		}
		if cfg.bin == "" && cfg.want(PathSiteToSite, PathClientToSite, PathUserspaceClientToSite, PathSiteToSiteMASQUE, PathSiteToSiteTrunk) {
			bin, cleanup, err := testbin.Build(false)
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			cfg.bin = bin
		}
		type scenario struct {
			name  string
			paths []string
			run   func(context.Context, *testing.T, config, *Results)
		}
		scenarios := []scenario{{"kernel", []string{PathKernel}, benchKernel}}
		if cfg.debian { // a footnote: Debian's 2022 build has no offloads
			scenarios = append(scenarios,
				scenario{"wireguard-go direct", []string{PathWGDirect}, benchWGDirect("wireguard-go", PathWGDirect)},
				scenario{"wireguard-go hub", []string{PathWGHub}, benchWGHub("wireguard-go", PathWGHub)})
		}
		if cfg.wgGomod != "" {
			scenarios = append(scenarios,
				scenario{"go.mod wireguard-go direct", []string{PathWGDirectGomod}, benchWGDirect(cfg.wgGomod, PathWGDirectGomod)},
				scenario{"go.mod wireguard-go hub", []string{PathWGHubGomod}, benchWGHub(cfg.wgGomod, PathWGHubGomod)},
				scenario{"go.mod wireguard-go through a relay", []string{PathWGRelayGomod}, benchWGRelay(cfg.wgGomod, PathWGRelayGomod)})
		}
		scenarios = append(scenarios, scenario{"switchyard", []string{PathSiteToSite, PathClientToSite, PathUserspaceClientToSite}, benchSwitchyardWG},
			scenario{"switchyard over MASQUE", []string{PathSiteToSiteMASQUE}, benchSwitchyardMASQUE},
			scenario{"switchyard across two edges", []string{PathSiteToSiteTrunk}, benchSwitchyardTrunk})
		for _, s := range scenarios {
			if !cfg.want(s.paths...) {
				continue
			}
			if ctx.Err() != nil {
				t.Errorf("%s: not run: %v", s.name, context.Cause(ctx))
				continue
			}
			t.Run(s.name, func(t *testing.T) { s.run(ctx, t, cfg, res) })
		}
	}
	res.EvaluateTargets()
	res.WriteTable(os.Stdout)
	if err := res.WriteJSON(cfg.out); err != nil {
		t.Error(err)
	} else {
		fmt.Printf("\nresults: %s\n", cfg.out)
	}
}

func needTools(debian bool) error {
	var missing []string
	tools := []string{"ip", "ping", "iperf3", "wg"}
	if debian {
		tools = append(tools, "wireguard-go")
	}
	for _, bin := range tools {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: apt-get install iproute2 iputils-ping iperf3 wireguard-tools wireguard-go (make bench does this)", strings.Join(missing, ", "))
	}
	return nil
}

// topo is the lab: two sites, a WAN router, the middle box (edge or hub) and a client.
type topo struct {
	l                          *lab.Lab
	wan, mid, gwa, gwb, client *lab.NS
	hosta, hostb               *lab.NS
	dir                        string
	iperfd                     *lab.Proc // the iperf3 server on host B
}

const (
	hostB     = "10.2.0.2"
	midWAN    = "203.0.113.6"
	gwaWAN    = "203.0.113.2"
	gwbWAN    = "203.0.113.10"
	wgPort    = "51820"
	iperfPort = "5201"
)

func newTopo(t *testing.T) *topo {
	l := lab.New(t)
	tp := &topo{l: l, dir: t.TempDir()}
	tp.wan = l.NS("wan")
	must(t, tp.wan.Sysctl("net.ipv4.ip_forward", "1"))
	tp.gwa, tp.mid, tp.gwb, tp.client = tp.wanNode(t, "gwa", 0), tp.wanNode(t, "mid", 1), tp.wanNode(t, "gwb", 2), tp.wanNode(t, "client", 3)
	tp.hosta, tp.hostb = l.NS("hosta"), l.NS("hostb")
	l.Link(tp.gwa, "10.1.0.1/24", tp.hosta, "10.1.0.2/24")
	l.Link(tp.gwb, "10.2.0.1/24", tp.hostb, hostB+"/24")
	must(t, tp.hosta.Route("add", "default", "via", "10.1.0.1"))
	must(t, tp.hostb.Route("add", "default", "via", "10.2.0.1"))
	for _, gw := range []*lab.NS{tp.gwa, tp.gwb} {
		must(t, gw.Sysctl("net.ipv4.ip_forward", "1"))
	}
	// The server for every run; --idle-timeout frees it should a client vanish
	// mid-test, --forceflush shows each line at once (serverListening).
	// iperf3 exits 1 on SIGTERM; the shell makes the lab's stop a clean one.
	tp.iperfd = tp.hostb.Start(t, "sh", "-c", "trap 'exit 0' TERM; iperf3 -s -B "+hostB+" -p "+iperfPort+" --idle-timeout 20 --forceflush & wait")
	return tp
}

// serverListening waits until iperfd, the iperf3 server, listens for a new
// test, at most 10 s (then the run goes on and fails if the server is stuck).
// iperf3 closes its listening socket at the end of each test and opens a new
// one, so the kernel resets a connection that reached the old one in
// between: a client started right after the previous one exited can be that
// connection where the previous test's last control message was still
// queued on the path behind the test's data (tens of milliseconds on the
// userspace client's path) while the new SYN was not.
func serverListening(ctx context.Context, iperfd *lab.Proc) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := iperfd.Output()
		if strings.LastIndex(out, "Server listening on") > strings.LastIndex(out, "Accepted connection from") {
			return nil
		}
		if iperfd.Exited() {
			return fmt.Errorf("%v exited: %s", iperfd, tail(out))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v: not listening for a new test within 10 s", iperfd)
		}
		if sleep(ctx, 2*time.Millisecond); ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
}

// wanNode adds the namespace name, joined to the WAN router by the i-th /30
// of 203.0.113.0/24 (.4i+2, the router .4i+1, its default route).
func (tp *topo) wanNode(t *testing.T, name string, i int) *lab.NS {
	n := tp.l.NS(name)
	tp.l.Link(tp.wan, fmt.Sprintf("203.0.113.%d/30", 4*i+1), n, fmt.Sprintf("203.0.113.%d/30", 4*i+2))
	must(t, n.Route("add", "default", "via", fmt.Sprintf("203.0.113.%d", 4*i+1)))
	return n
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// daemon is a process whose CPU time a path reports; one without a
// process is the whole machine (RoleMachine).
type daemon struct {
	role string
	p    *lab.Proc
}

// machine is the daemon every path reports besides its own.
var machine = daemon{role: RoleMachine}

// usage is what a daemon has used since it started.
type usage struct {
	cpu      time.Duration
	switches uint64 // context switches of its threads, voluntary and involuntary
}

// usage reads the daemon's CPU time and its threads' context switches.
func (d daemon) usage() (usage, error) {
	if d.p == nil {
		s, err := ReadCPUSample()
		if err != nil {
			return usage{}, fmt.Errorf("cpu time of the machine: %w", err)
		}
		return usage{cpu: s.Used(), switches: s.Switches}, nil
	}
	cpu, err := d.cpu()
	if err != nil {
		return usage{}, err
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", d.p.PID()))
	if err != nil || len(tasks) == 0 {
		return usage{}, fmt.Errorf("threads of %s: none under /proc/%d/task", d.role, d.p.PID())
	}
	u := usage{cpu: cpu}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread exited: its switches are lost, a Go runtime seldom ends one
		}
		if err != nil {
			return usage{}, fmt.Errorf("context switches of %s: %w", d.role, err)
		}
		n, err := ParseSwitches(b)
		if err != nil {
			return usage{}, fmt.Errorf("context switches of %s (%s): %w", d.role, f, err)
		}
		u.switches += n
	}
	return u, nil
}

func (d daemon) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.p.PID()))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %s: %w", d.role, err)
	}
	c, err := ParseProcStat(b)
	if err != nil {
		return 0, fmt.Errorf("cpu time of %s: %w", d.role, err)
	}
	return c, nil
}

// run starts args in ns and waits for it, at most limit, and no longer than
// ctx: a Ctrl-C stops the tool at once.
func run(ctx context.Context, t *testing.T, ns *lab.NS, limit time.Duration, args ...string) (string, error) {
	p := ns.Start(t, args...)
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return p.Output(), fmt.Errorf("%v: %w\n%s", p, err, tail(p.Output()))
		}
		return p.Output(), nil
	case <-ctx.Done():
		p.Stop()
		return "", fmt.Errorf("%v: %w", p, context.Cause(ctx))
	case <-timer.C:
		p.Stop()
		return "", fmt.Errorf("%v: no result within %v", p, limit)
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// jsonPart cuts the JSON document out of output that may carry warnings.
func jsonPart(s string) []byte {
	i, j := strings.IndexByte(s, '{'), strings.LastIndexByte(s, '}')
	if i < 0 || j < i {
		return []byte(s)
	}
	return []byte(s[i : j+1])
}

// pathSpec is one path to measure: traffic from src to host B, whose
// iperf3 server is iperfd.
type pathSpec struct {
	name, desc string
	src        *lab.NS
	iperfd     *lab.Proc
	daemons    []daemon
	// profile, if set, records a CPU profile for d during the first
	// repetition's run of config.profileLoad.
	profile func(d time.Duration) error
	// verify, if set, must pass once the path works, before it is measured:
	// that the packets take the way the path is named for.
	verify func(context.Context) error
	// target, if set, is the iperf3 server's host:port for src instead of
	// host B's (a local forwarder); with tcpOnly, no ping and no UDP run
	// (the path carries TCP streams only), and a TCP connect to target
	// checks that it works.
	target  string
	tcpOnly bool
}

// measure runs the repetitions of one path and records them.
func measure(ctx context.Context, t *testing.T, cfg config, res *Results, spec pathSpec) {
	name, src, daemons := spec.name, spec.src, append(slices.Clip(spec.daemons), machine)
	p := &Path{Name: name, Desc: spec.desc}
	res.Paths = append(res.Paths, p)
	fail := func(err error) {
		p.Errors = append(p.Errors, err.Error())
		t.Error(err)
	}
	iperfHost, iperfP := hostB, iperfPort
	if spec.target != "" {
		iperfHost, iperfP, _ = net.SplitHostPort(spec.target)
	}
	// iperf runs an iperf3 client in src once the server listens for it.
	iperf := func(limit time.Duration, args ...string) (string, error) {
		if err := serverListening(ctx, spec.iperfd); err != nil {
			return "", err
		}
		return run(ctx, t, src, limit, append([]string{"iperf3"}, args...)...)
	}
	works := func() error { return src.Ping(hostB, 1) }
	if spec.tcpOnly {
		works = func() error { // a 1 s iperf3 run through the forwarder
			_, err := iperf(10*time.Second, "-c", iperfHost, "-p", iperfP, "-t", "1", "--connect-timeout", "3000")
			return err
		}
	}
	// The path must work before it is measured (this also completes handshakes).
	if err := eventually(ctx, 15*time.Second, works); err != nil {
		fail(fmt.Errorf("path does not work: %w", err))
		return
	}
	if spec.verify != nil {
		if err := spec.verify(ctx); err != nil {
			fail(fmt.Errorf("path not taken: %w", err))
			return
		}
	}
	p.Idle = waitIdle(ctx, cfg, name)
	before, stealErr := ReadCPUSample()
	defer func() {
		after, err := ReadCPUSample()
		if err = cmp.Or(stealErr, err); err != nil {
			fail(err)
			return
		}
		if p.Steal = 100 * before.StealShare(after.CPUTimes); p.Stolen() {
			t.Logf("== %s: !!! the hypervisor took %.0f%% of the CPU time while it was measured (limit %d%%); these figures are not a quiet run's", name, p.Steal, MaxStealPct)
		}
	}()
	limit := time.Duration(cfg.seconds)*time.Second + 15*time.Second
	// The TCP runs, each with its own CPU accounting: saturated with 1 and 4
	// streams, and one stream at the offered rate, where every path moves
	// the same bytes and the CPU per GB is not confounded with throughput.
	type tcpRun struct {
		load    Load
		streams int
		rate    string // iperf3 -b; "" saturates
	}
	runs := []tcpRun{{LoadTCP1, 1, ""}, {LoadTCP4, 4, ""}}
	if cfg.rate != "0" {
		runs = append(runs, tcpRun{LoadRate, 1, cfg.rate})
	}
	var udp, loss, rtt []float64
	gbps, retr := map[Load][]float64{}, map[Load][]float64{}
	cpu, switches := make([]map[Load][]float64, len(daemons)), make([]map[Load][]float64, len(daemons))
	for i := range cpu {
		cpu[i], switches[i] = map[Load][]float64{}, map[Load][]float64{}
	}
	for rep := 0; rep < cfg.reps && ctx.Err() == nil; rep++ {
		var out string
		var err error
		if !spec.tcpOnly { // no ICMP through a TCP forwarder
			out, err = run(ctx, t, src, time.Duration(cfg.pings)/50*time.Second+10*time.Second,
				"ping", "-q", "-n", "-c", strconv.Itoa(cfg.pings), "-i", "0.02", "-W", "1", hostB)
		}
		if err == nil && !spec.tcpOnly {
			var pg Ping
			if pg, err = ParsePing([]byte(out)); err == nil {
				rtt = append(rtt, pg.Avg)
			}
		}
		if err != nil {
			fail(fmt.Errorf("rep %d: ping: %w", rep+1, err))
		}

		for _, tr := range runs {
			if ctx.Err() != nil {
				break
			}
			before := make([]usage, len(daemons))
			for i, d := range daemons {
				if before[i], err = d.usage(); err != nil {
					fail(err)
				}
			}
			var profiled chan error
			if spec.profile != nil && rep == 0 && tr.load == cfg.profileLoad {
				profiled = make(chan error, 1)
				go func() { profiled <- spec.profile(time.Duration(cfg.seconds) * time.Second) }()
			}
			args := []string{"-c", iperfHost, "-p", iperfP, "-J", "-t", strconv.Itoa(cfg.seconds),
				"-P", strconv.Itoa(tr.streams), "--connect-timeout", "3000"}
			if tr.rate != "" {
				args = append(args, "-b", tr.rate)
			}
			out, err := iperf(limit, args...)
			if profiled != nil {
				if err := <-profiled; err != nil {
					fail(err)
				}
			}
			var r IperfTCP
			if err == nil {
				r, err = ParseIperfTCP(jsonPart(out))
			}
			if err != nil {
				fail(fmt.Errorf("rep %d: TCP %d streams %s: %w", rep+1, tr.streams, tr.rate, err))
				continue
			}
			gbps[tr.load] = append(gbps[tr.load], r.Gbps)
			if r.Bytes > 0 {
				retr[tr.load] = append(retr[tr.load], r.Retransmits/(r.Bytes/1e9))
			}
			for i, d := range daemons {
				after, err := d.usage()
				if err != nil {
					fail(err)
					continue
				}
				if gb := r.Bytes / 1e9; gb > 0 {
					cpu[i][tr.load] = append(cpu[i][tr.load], (after.cpu-before[i].cpu).Seconds()/gb)
					switches[i][tr.load] = append(switches[i][tr.load], max(float64(after.switches)-float64(before[i].switches), 0)/gb)
				}
			}
		}

		if ctx.Err() != nil {
			break
		}
		if spec.tcpOnly {
			continue
		}
		out, err = iperf(limit, "-c", hostB, "-p", iperfPort, "-J", "-t", strconv.Itoa(cfg.seconds),
			"-u", "-l", "64", "-b", "0", "--connect-timeout", "3000")
		var u IperfUDP
		if err == nil {
			u, err = ParseIperfUDP(jsonPart(out))
		}
		if err != nil {
			fail(fmt.Errorf("rep %d: UDP 64 B: %w", rep+1, err))
		} else {
			udp = append(udp, u.PPS)
			if u.Sent > 0 {
				loss = append(loss, 100*u.Lost/u.Sent)
			}
		}
		sleep(ctx, 500*time.Millisecond) // let the flood's queues drain before the next ping
	}
	p.TCP1, p.TCP4, p.Rate = Summarize(gbps[LoadTCP1]), Summarize(gbps[LoadTCP4]), Summarize(gbps[LoadRate])
	p.UDP64, p.UDPLoss, p.RTT = Summarize(udp), Summarize(loss), Summarize(rtt)
	p.Retransmits = LoadFigures{Role: "TCP", TCP1: Summarize(retr[LoadTCP1]), TCP4: Summarize(retr[LoadTCP4]), Rate: Summarize(retr[LoadRate])}
	for i, d := range daemons {
		p.CPU = append(p.CPU, LoadFigures{Role: d.role, TCP1: Summarize(cpu[i][LoadTCP1]), TCP4: Summarize(cpu[i][LoadTCP4]), Rate: Summarize(cpu[i][LoadRate])})
		p.Switches = append(p.Switches, LoadFigures{Role: d.role, TCP1: Summarize(switches[i][LoadTCP1]), TCP4: Summarize(switches[i][LoadTCP4]), Rate: Summarize(switches[i][LoadRate])})
	}
	if ctx.Err() != nil {
		fail(fmt.Errorf("stopped: %w", context.Cause(ctx)))
	}
	t.Logf("%s: TCP1 %s Gbps, TCP4 %s Gbps, at %s %s Gbps, UDP %s pps, RTT %s ms", name, p.TCP1.Format(2), p.TCP4.Format(2), cfg.rate, p.Rate.Format(2), p.UDP64.Format(0), p.RTT.Format(3))
}

// measureQUICFloor runs transport/masque's BenchmarkDatagramFloor (bare
// QUIC on loopback, in a process of its own) cfg.reps times for
// cfg.seconds each.
func measureQUICFloor(ctx context.Context, cfg config) (*QUICFloor, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.reps)*(time.Duration(cfg.seconds)*time.Second*3+30*time.Second))
	defer cancel()
	cmd := exec.CommandContext(ctx, cfg.masqueTest, "-test.run", "^$", "-test.bench", "^"+BenchQUICFloor+"$",
		"-test.benchtime", fmt.Sprintf("%ds", cfg.seconds), "-test.count", strconv.Itoa(cfg.reps))
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", cfg.masqueTest, err, out)
	}
	return QUICFloorOf(ParseGoBench(out))
}

// waitIdle waits for an idle machine before what is measured, and says
// what it found, loudly when the machine stayed busy.
func waitIdle(ctx context.Context, cfg config, what string) IdleWait {
	w := WaitIdle(ctx, cfg.idle, ReadCPUSample)
	if w.Idle {
		fmt.Printf("== %s: %s\n", what, w)
	} else {
		fmt.Printf("== %s: !!! %s\n", what, w)
	}
	return w
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func eventually(ctx context.Context, d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// benchKernel: plain routes through gwa, wan and gwb; no tunnel, no daemon.
func benchKernel(ctx context.Context, t *testing.T, cfg config, res *Results) {
	tp := newTopo(t)
	must(t, tp.gwa.Route("add", "10.2.0.0/16", "via", "203.0.113.1"))
	must(t, tp.gwb.Route("add", "10.1.0.0/16", "via", "203.0.113.9"))
	must(t, tp.wan.Route("add", "10.1.0.0/16", "via", gwaWAN))
	must(t, tp.wan.Route("add", "10.2.0.0/16", "via", gwbWAN))
	measure(ctx, t, cfg, res, pathSpec{name: PathKernel, iperfd: tp.iperfd, desc: "host A → gwa → wan → gwb → host B, kernel forwarding only (the ceiling)", src: tp.hosta})
}

// wgKey is a WireGuard key pair in wg(8)'s base64 form.
type wgKey struct{ priv, pub string }

func newWGKey(t *testing.T) wgKey {
	k, err := wireguard.GeneratePrivateKey()
	must(t, err)
	return wgKey{priv: base64.StdEncoding.EncodeToString(k[:]), pub: k.PublicKey().String()}
}

// wgPeer is one peer line of `wg set`.
type wgPeer struct {
	key      wgKey
	endpoint string // empty: learned from the peer
	allowed  string
}

// startWG runs the stock wireguard-go in the foreground in ns, configures it
// with wg(8), and routes routes into it. The interface name carries the lab's
// prefix: wireguard-go's control socket lives in the shared /var/run/wireguard.
func startWG(t *testing.T, tp *topo, bin string, ns *lab.NS, ifname string, key wgKey, peers []wgPeer, routes ...string) *lab.Proc {
	ifname = tp.l.Prefix() + ifname
	p := ns.Start(t, bin, "-f", ifname)
	must(t, eventually(context.Background(), 5*time.Second, func() error {
		if p.Exited() {
			return fmt.Errorf("%v exited: %s", p, p.Output())
		}
		_, err := ns.Exec("wg", "show", ifname)
		return err
	}))
	keyFile := filepath.Join(tp.dir, ifname+".key")
	must(t, os.WriteFile(keyFile, []byte(key.priv+"\n"), 0o600))
	args := []string{"wg", "set", ifname, "private-key", keyFile, "listen-port", wgPort}
	for _, pr := range peers {
		args = append(args, "peer", pr.key.pub, "allowed-ips", pr.allowed)
		if pr.endpoint != "" {
			args = append(args, "endpoint", pr.endpoint)
		}
	}
	ns.MustExec(t, args...)
	ns.MustExec(t, "ip", "link", "set", ifname, "up")
	for _, r := range routes {
		must(t, ns.Route("add", r, "dev", ifname))
	}
	return p
}

// wgVersion returns the first line of `bin --version`.
func wgVersion(bin string) string {
	out, _ := exec.Command(bin, "--version").Output()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// benchWGDirect: one wireguard-go tunnel (the binary bin) between the two gateways.
func benchWGDirect(bin, name string) func(context.Context, *testing.T, config, *Results) {
	return func(ctx context.Context, t *testing.T, cfg config, res *Results) {
		tp := newTopo(t)
		ka, kb := newWGKey(t), newWGKey(t)
		pa := startWG(t, tp, bin, tp.gwa, "wa", ka, []wgPeer{{kb, gwbWAN + ":" + wgPort, "10.2.0.0/16"}}, "10.2.0.0/16")
		pb := startWG(t, tp, bin, tp.gwb, "wb", kb, []wgPeer{{ka, gwaWAN + ":" + wgPort, "10.1.0.0/16"}}, "10.1.0.0/16")
		measure(ctx, t, cfg, res, pathSpec{name: name, iperfd: tp.iperfd, src: tp.hosta,
			desc:    "host A → wireguard-go on gwa ═ wireguard-go on gwb → host B (no edge); " + wgVersion(bin),
			daemons: []daemon{{"gwa wireguard-go", pa}, {"gwb wireguard-go", pb}}})
	}
}

// benchWGHub: three wireguard-go processes (the binary bin); the middle
// one's kernel forwards between its two peers (the naive edge).
func benchWGHub(bin, name string) func(context.Context, *testing.T, config, *Results) {
	return func(ctx context.Context, t *testing.T, cfg config, res *Results) {
		tp := newTopo(t)
		must(t, tp.mid.Sysctl("net.ipv4.ip_forward", "1"))
		ka, kh, kb := newWGKey(t), newWGKey(t), newWGKey(t)
		hub := midWAN + ":" + wgPort
		pa := startWG(t, tp, bin, tp.gwa, "wa", ka, []wgPeer{{kh, hub, "10.2.0.0/16"}}, "10.2.0.0/16")
		pb := startWG(t, tp, bin, tp.gwb, "wb", kb, []wgPeer{{kh, hub, "10.1.0.0/16"}}, "10.1.0.0/16")
		ph := startWG(t, tp, bin, tp.mid, "wh", kh, []wgPeer{{ka, gwaWAN + ":" + wgPort, "10.1.0.0/16"}, {kb, gwbWAN + ":" + wgPort, "10.2.0.0/16"}},
			"10.1.0.0/16", "10.2.0.0/16")
		measure(ctx, t, cfg, res, pathSpec{name: name, iperfd: tp.iperfd, src: tp.hosta,
			desc:    "host A → wireguard-go gwa ═ wireguard-go hub (kernel forwards) ═ wireguard-go gwb → host B; " + wgVersion(bin),
			daemons: []daemon{{"gwa wireguard-go", pa}, {"hub wireguard-go", ph}, {"gwb wireguard-go", pb}}})
	}
}

// benchSwitchyardWG: the edge in the middle, connectors on both gateways and
// a client, over WireGuard; measures site to site, then client to site.
func benchSwitchyardWG(ctx context.Context, t *testing.T, cfg config, res *Results) {
	tp, edge, profile, cli := startBenchEdge(t, cfg, "edge-cpu.pprof")
	ca, cb := startConnectors(t, cfg, tp, cli, cli, "wireguard")
	var enroll struct{ Token string }
	must(t, json.Unmarshal([]byte(cli("device", "enroll-token", "create", "-o", "json")), &enroll))
	client := tp.client.Start(t, cfg.bin, "client", "up", "--token", enroll.Token, "--state-dir", filepath.Join(tp.dir, "client"),
		"--tun-name", "sy1", "--name", "bench", "--no-dns") // the namespaces share /etc/resolv.conf
	must(t, client.WaitFor("host configured", 20*time.Second))

	if cfg.want(PathSiteToSite) {
		measure(ctx, t, cfg, res, pathSpec{name: PathSiteToSite, iperfd: tp.iperfd, desc: "host A → connector A ═ edge ═ connector B → host B", src: tp.hosta,
			daemons: []daemon{{"connector A", ca}, {"edge", edge}, {"connector B", cb}}, profile: profile})
	}
	if cfg.want(PathClientToSite) && ctx.Err() == nil {
		measure(ctx, t, cfg, res, pathSpec{name: PathClientToSite, iperfd: tp.iperfd, desc: "client ═ edge ═ connector B → host B", src: tp.client,
			daemons: []daemon{{"client", client}, {"edge", edge}, {"connector B", cb}}})
	}
	if cfg.want(PathUserspaceClientToSite) && ctx.Err() == nil {
		access := startUserspaceAccess(t, cfg, tp, cli)
		measure(ctx, t, cfg, res, pathSpec{name: PathUserspaceClientToSite, iperfd: tp.iperfd, src: tp.client, target: "127.0.0.1:" + accessPort, tcpOnly: true,
			desc:    "client's loopback → access tcp (userspace: netstack + wireguard-go, no TUN) ═ edge ═ connector B → host B; TCP only",
			daemons: []daemon{{"access tcp", access}, {"edge", edge}, {"connector B", cb}}})
	}
	logEdgeStats(t, tp, cfg)
}

// accessPort is where the userspace path's access tcp listens on the
// client's loopback.
const accessPort = "15201"

// startUserspaceAccess enrolls a second device in the client's namespace in
// userspace mode (client up --userspace, stopped once configured), then runs
// `access tcp` with its state dir and no client running: a session of its
// own that forwards 127.0.0.1:accessPort to host B's iperf3 port.
func startUserspaceAccess(t *testing.T, cfg config, tp *topo, cli func(...string) string) *lab.Proc {
	var enroll struct{ Token string }
	must(t, json.Unmarshal([]byte(cli("device", "enroll-token", "create", "-o", "json")), &enroll))
	state := filepath.Join(tp.dir, "client-userspace")
	us := tp.client.Start(t, cfg.bin, "client", "up", "--userspace", "--token", enroll.Token, "--state-dir", state,
		"--name", "bench-userspace", "--socks5", "127.0.0.1:1080")
	must(t, us.WaitFor("host configured", 20*time.Second))
	must(t, us.Stop())
	access := tp.client.Start(t, cfg.bin, "access", "tcp", "--listener", "127.0.0.1:"+accessPort,
		"--destination", net.JoinHostPort(hostB, iperfPort), "--state-dir", state)
	must(t, access.WaitFor("forwarding", 20*time.Second))
	return access
}

// benchSwitchyardMASQUE: site to site with both connectors on MASQUE.
func benchSwitchyardMASQUE(ctx context.Context, t *testing.T, cfg config, res *Results) {
	tp, edge, profile, cli := startBenchEdge(t, cfg, "edge-masque-cpu.pprof")
	ca, cb := startConnectors(t, cfg, tp, cli, cli, "masque")
	measure(ctx, t, cfg, res, pathSpec{name: PathSiteToSiteMASQUE, iperfd: tp.iperfd, desc: "host A → connector A ═ MASQUE (HTTP/3) ═ edge ═ MASQUE ═ connector B → host B", src: tp.hosta,
		daemons: []daemon{{"connector A", ca}, {"edge", edge}, {"connector B", cb}}, profile: profile})
	logMASQUEQueues(t, cli("stats", "-o", "json"))
	// The connectors log their sessions' counters when they close: with
	// the edge's, they show where datagrams were dropped (A's sent against
	// what reached the edge's sessions, the edge's sent against B's
	// received), since QUIC itself declares few packets lost.
	for _, c := range []struct {
		name string
		p    *lab.Proc
	}{{"connector A", ca}, {"connector B", cb}} {
		if err := c.p.Stop(); err != nil {
			t.Logf("stop %s: %v", c.name, err)
		}
		for _, line := range strings.Split(c.p.Output(), "\n") {
			if strings.Contains(line, "MASQUE session closed") {
				t.Logf("%s: %s", c.name, line)
			}
		}
	}
	logEdgeStats(t, tp, cfg)
}

// logMASQUEQueues prints the edge's MASQUE counters over all the path's
// runs: the QUIC packets its sessions received (datagrams, and the ACKs of
// what it sent) against the datagrams that reached the sessions, and the
// datagrams it sent against their QUIC packets (small ones share a packet).
func logMASQUEQueues(t *testing.T, statsJSON string) {
	var st struct {
		Traffic struct {
			Rx   uint64 `json:"rx_packets"`
			Tx   uint64 `json:"tx_packets"`
			QUIC struct {
				Received uint64 `json:"packets_received"`
				Sent     uint64 `json:"packets_sent"`
				Lost     uint64 `json:"packets_lost"`
			} `json:"quic"`
		} `json:"masque_traffic"`
	}
	if err := json.Unmarshal([]byte(statsJSON), &st); err != nil {
		t.Logf("MASQUE at the edge: stats not readable: %v", err)
		return
	}
	m := st.Traffic
	t.Logf("MASQUE at the edge: %d QUIC packets received, %d datagrams reached the sessions; %d datagrams sent in %d QUIC packets, %d declared lost",
		m.QUIC.Received, m.Rx, m.Tx, m.QUIC.Sent, m.QUIC.Lost)
}

// startBenchEdge starts the edge in the middle namespace (with a pprof
// listener when BENCH_PROFILE=1, whose profile goes to profName next to the
// results) and returns a function running the admin CLI.
func startBenchEdge(t *testing.T, cfg config, profName string) (tp *topo, edge *lab.Proc, profile func(time.Duration) error, cli func(...string) string) {
	tp = newTopo(t)
	var extra []string
	if cfg.profile {
		extra = append(extra, "--debug-addr", debugAddr)
		profile = func(d time.Duration) error {
			return fetchProfile(tp.mid, d, filepath.Join(filepath.Dir(cfg.out), profName))
		}
	}
	edge, cli = startEdge(t, cfg, tp.mid, filepath.Join(tp.dir, "edge"), midWAN, extra...)
	cli("tunnel", "vnet", "add", "--default", "bench")
	return tp, edge, profile, cli
}

// startEdge starts an edge in ns, with its data in dataDir, listening on
// wanAddr, with extra flags, and returns it and a function running the admin
// CLI against it.
func startEdge(t *testing.T, cfg config, ns *lab.NS, dataDir, wanAddr string, extra ...string) (*lab.Proc, func(...string) string) {
	cli := func(args ...string) string {
		t.Helper()
		return ns.MustExec(t, append([]string{cfg.bin, "--config", filepath.Join(dataDir, "admin.json")}, args...)...)
	}
	args := append([]string{cfg.bin, "edge", "--data-dir", dataDir, "--api-listen", wanAddr + ":7443",
		"--wg-listen", ":" + wgPort, "--masque-listen", ":443", "--public-addr", wanAddr + ":" + wgPort}, extra...)
	edge := ns.Start(t, args...)
	must(t, edge.WaitFor("edge started", 20*time.Second))
	return edge, cli
}

// startConnectors creates tunnels site-a through cliA's edge and site-b
// through cliB's (the same edge but on a cluster), with their routes and a
// split tunnel for clients, and starts their connectors on gwa and gwb over
// protocol, with extra flags. Each token names its own edge first, so each
// connector attaches to the edge that made its tunnel.
func startConnectors(t *testing.T, cfg config, tp *topo, cliA, cliB func(...string) string, protocol string, extra ...string) (a, b *lab.Proc) {
	token := func(cli func(...string) string, name string) string {
		var c struct{ Token string }
		must(t, json.Unmarshal([]byte(cli("tunnel", "create", "-o", "json", name)), &c))
		if c.Token == "" {
			t.Fatalf("tunnel create %s: no token", name)
		}
		return c.Token
	}
	ta, tb := token(cliA, "site-a"), token(cliB, "site-b")
	cliA("tunnel", "route", "ip", "add", "10.1.0.0/16", "site-a")
	cliA("tunnel", "route", "ip", "add", "10.2.0.0/16", "site-b")
	cliA("split-tunnel", "mode", "include")
	cliA("split-tunnel", "add", "10.0.0.0/8")
	connector := func(ns *lab.NS, name, tok string) *lab.Proc {
		p := ns.Start(t, append([]string{cfg.bin, "connector", "run", "--token", tok, "--state-dir", filepath.Join(tp.dir, name),
			"--tun-name", "sy0", "--protocol", protocol}, extra...)...)
		must(t, p.WaitFor("host configured", 20*time.Second))
		return p
	}
	return connector(tp.gwa, "gwa", ta), connector(tp.gwb, "gwb", tb)
}

// logEdgeStats prints the edge's counters when the test failed.
func logEdgeStats(t *testing.T, tp *topo, cfg config) {
	logStats(t, cfg, tp.mid, "edge", filepath.Join(tp.dir, "edge"))
}

// logStats prints the counters of the edge role in ns with its data in
// dataDir when the test failed.
func logStats(t *testing.T, cfg config, ns *lab.NS, role, dataDir string) {
	if t.Failed() {
		if out, err := ns.Exec(cfg.bin, "--config", filepath.Join(dataDir, "admin.json"), "stats"); err == nil {
			t.Logf("%s stats:\n%s", role, out)
		}
	}
}

// debugAddr is the edge's pprof listener inside its namespace (BENCH_PROFILE=1).
const debugAddr = "127.0.0.1:6060"

// fetchProfile records the edge's CPU profile for d into path.
func fetchProfile(ns *lab.NS, d time.Duration, path string) error {
	hc := &http.Client{
		Timeout: d + 15*time.Second,
		Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
			return ns.Dial("tcp", debugAddr)
		}},
	}
	secs := max(1, int(d/time.Second))
	resp, err := hc.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, secs))
	if err != nil {
		return fmt.Errorf("edge CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("edge CPU profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("edge CPU profile: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("edge CPU profile: %w", err)
	}
	fmt.Printf("edge CPU profile: %s (go tool pprof -top %s)\n", path, path)
	return nil
}
