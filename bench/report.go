package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Path names, as they appear in the results file.
const (
	PathKernel       = "kernel"            // plain kernel forwarding, no tunnel: the ceiling
	PathWGDirect     = "wggo-direct"       // wireguard-go gateway to wireguard-go gateway
	PathWGHub        = "wggo-hub"          // three wireguard-go processes, the middle one forwarding
	PathSiteToSite   = "switchyard-s2s"    // host A → connector A → edge → connector B → host B
	PathClientToSite = "switchyard-client" // client → edge → connector B → host B
	// PathUserspaceClientToSite is the userspace client (no TUN): iperf3 on
	// the client's loopback → access tcp (gVisor netstack and wireguard-go in
	// one unprivileged process) → edge → connector B → host B; TCP only.
	PathUserspaceClientToSite = "switchyard-client-userspace"
	// PathSiteToSiteMASQUE is site to site with both connectors on MASQUE.
	PathSiteToSiteMASQUE = "switchyard-s2s-masque"
	// PathSiteToSiteTrunk is site to site across a cluster: host A → connector
	// A → edge 1 → trunk → edge 2 → connector B → host B.
	PathSiteToSiteTrunk = "switchyard-s2s-trunk"
	// PathWGDirectGomod and PathWGHubGomod are the wireguard-go paths with the
	// version go.mod names (the one inside the connectors), built from source.
	PathWGDirectGomod = "wggo-direct-gomod"
	PathWGHubGomod    = "wggo-hub-gomod"
	// PathWGRelayGomod is the go.mod wireguard-go tunnel through a bare UDP
	// relay on the middle box: one more process on the path, doing nothing
	// but receive and send (the edge's socket layer, no crypto or routing).
	PathWGRelayGomod = "wggo-relay-gomod"
)

// RoleMachine is the role of the whole machine in a path's figures: every
// process and the kernel, less the hypervisor's steal. On a machine whose
// cores the path saturates, its CPU per GB sets the throughput.
const RoleMachine = "machine"

// Results is everything one `make bench` run measured; it is written as JSON.
type Results struct {
	Started time.Time `json:"started"`
	Host    Host      `json:"host"`
	Reps    int       `json:"reps"`
	Seconds int       `json:"seconds_per_run"`
	// Rate is the offered rate of the fixed-rate TCP run (iperf3 -b), "" when skipped.
	Rate string `json:"offered_rate,omitempty"`
	// Idle is the policy each path waited for before it was measured.
	Idle  IdlePolicyJSON `json:"idle_policy"`
	Floor *CryptoFloor   `json:"crypto_floor,omitempty"`
	// QUICFloor is quic-go's own cost per forwarded datagram, measured in
	// this run when the MASQUE path is.
	QUICFloor *QUICFloor `json:"quic_floor,omitempty"`
	Paths     []*Path    `json:"paths"`
	Micro     []GoBench  `json:"micro,omitempty"`
	// Targets are the goals of issue 20 with what this run measured.
	Targets []Target `json:"targets"`
}

// IdlePolicyJSON is an IdlePolicy as the results file records it.
type IdlePolicyJSON struct {
	Threshold float64 `json:"threshold_cores"`
	Window    float64 `json:"window_s"`
	Max       float64 `json:"max_wait_s"`
}

// CryptoFloor is the AEAD work the edge cannot avoid per forwarded byte:
// ChaCha20-Poly1305 Open plus Seal of one packet (golang.org/x/crypto, the
// edge's AEAD), on one core, in CPU seconds per GB of plaintext.
type CryptoFloor struct {
	Size  int     `json:"packet_bytes"`
	Open  Summary `json:"open_s_per_gb"`
	Seal  Summary `json:"seal_s_per_gb"`
	Total Summary `json:"total_s_per_gb"`
	// Idle is what the wait for an idle machine before it found (it counts
	// thread CPU time, so contention moves it less than the paths).
	Idle IdleWait `json:"idle"`
}

// QUICFloor is the least the edge can pay through quic-go's API for a
// packet it forwards from one MASQUE session to another: transport/masque
// BenchmarkDatagramFloor, one SendDatagram and one ReceiveDatagram of a
// full-size datagram on bare QUIC connections on loopback (no HTTP/3,
// CONNECT-IP or routing), per GB of the TCP payload those datagrams carry.
type QUICFloor struct {
	CPU      Summary `json:"cpu_s_per_gb"`
	Switches Summary `json:"context_switches_per_gb"`
	Gbps     Summary `json:"gbps"`
	// Idle is what the wait for an idle machine before it found.
	Idle IdleWait `json:"idle"`
}

// QUICFloorOf summarizes the BenchQUICFloor runs in benches, or returns an
// error if there is none or one lacks a figure.
func QUICFloorOf(benches []GoBench) (*QUICFloor, error) {
	var cpu, switches, gbps []float64
	for _, b := range benches {
		if b.Name != BenchQUICFloor {
			continue
		}
		c, okC := b.Metrics["cpu-s/GB"]
		s, okS := b.Metrics["switches/GB"]
		g, okG := b.Metrics["Gbps"]
		if !okC || !okS || !okG || c <= 0 {
			return nil, fmt.Errorf("%s: want cpu-s/GB, switches/GB and Gbps, got %v", BenchQUICFloor, b.Metrics)
		}
		cpu, switches, gbps = append(cpu, c), append(switches, s), append(gbps, g)
	}
	if len(cpu) == 0 {
		return nil, fmt.Errorf("no %s result", BenchQUICFloor)
	}
	return &QUICFloor{CPU: Summarize(cpu), Switches: Summarize(switches), Gbps: Summarize(gbps)}, nil
}

// Host describes the machine the run was on.
type Host struct {
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
}

// Path holds the measurements of one topology.
type Path struct {
	Name string `json:"name"`
	Desc string `json:"desc"`
	// Idle is what the wait for an idle machine before this path found.
	Idle IdleWait `json:"idle"`
	// Steal is the percentage of the machine's CPU time the hypervisor
	// took while the path was measured; above MaxStealPct the path is busy.
	Steal float64 `json:"steal_pct"`
	// TCP1 and TCP4 are iperf3 TCP throughput in Gbps with 1 and 4 streams.
	TCP1 Summary `json:"tcp1_gbps"`
	TCP4 Summary `json:"tcp4_gbps"`
	// Rate is the Gbps delivered by one TCP stream offered Results.Rate.
	Rate Summary `json:"rate_gbps"`
	// UDP64 is UDP packets per second delivered with 64-byte payloads.
	UDP64 Summary `json:"udp64_pps"`
	// UDPLoss is the percentage of those packets lost at full blast (-b 0).
	UDPLoss Summary `json:"udp64_loss_pct"`
	// RTT is the average ping round trip in milliseconds.
	RTT Summary `json:"rtt_ms"`
	// CPU is each daemon's CPU seconds per GB received, per load.
	CPU []LoadFigures `json:"cpu_s_per_gb,omitempty"`
	// Retransmits are the TCP senders' retransmissions per GB received,
	// per load (Role "TCP").
	Retransmits LoadFigures `json:"tcp_retransmits_per_gb"`
	// Switches is each daemon's context switches per GB received (all its
	// threads, voluntary and involuntary), per load: each is one sleep and
	// wakeup, which costs the daemon CPU time of its own.
	Switches []LoadFigures `json:"context_switches_per_gb,omitempty"`
	Errors   []string      `json:"errors,omitempty"`
}

// Load is one of the TCP runs whose CPU cost a path reports.
type Load int

// The loads: saturated with 1 and with 4 streams, and 1 stream at the offered rate.
const (
	LoadTCP1 Load = iota
	LoadTCP4
	LoadRate
)

// loads are every Load with its label, in table order.
var loads = []struct {
	load  Load
	label string
}{{LoadTCP1, "1 stream"}, {LoadTCP4, "4 streams"}, {LoadRate, "offered rate"}}

// LoadFigures is one figure of one role under each load: a daemon's CPU
// seconds or context switches per GB, or the inner TCP's retransmissions
// per GB (role "TCP").
type LoadFigures struct {
	Role string  `json:"role"`
	TCP1 Summary `json:"tcp1"`
	TCP4 Summary `json:"tcp4"`
	Rate Summary `json:"rate"`
}

// Of returns the summary for load.
func (d LoadFigures) Of(load Load) Summary {
	switch load {
	case LoadTCP1:
		return d.TCP1
	case LoadTCP4:
		return d.TCP4
	default:
		return d.Rate
	}
}

// Find returns the path named name, or nil.
func (r *Results) Find(name string) *Path {
	for _, p := range r.Paths {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// DaemonCPU returns the CPU summary of role under load on the path, or an empty one.
func (p *Path) DaemonCPU(role string, load Load) Summary {
	if p != nil {
		for _, d := range p.CPU {
			if d.Role == role {
				return d.Of(load)
			}
		}
	}
	return Summary{}
}

// CPUSum returns the sum of the median CPU costs of roles under load on the
// path, or 0 if any of them was not measured.
func (p *Path) CPUSum(load Load, roles ...string) float64 {
	sum := 0.0
	for _, role := range roles {
		s := p.DaemonCPU(role, load)
		if !s.Valid() {
			return 0
		}
		sum += s.Median
	}
	return sum
}

// Stolen reports whether the hypervisor took more than MaxStealPct of the
// CPU time while p was measured.
func (p *Path) Stolen() bool { return p.Steal > MaxStealPct }

// Busy returns the paths measured without an idle machine: busy when
// their measurement began, or stolen while it ran.
func (r *Results) Busy() []string {
	var busy []string
	for _, p := range r.Paths {
		if !p.Idle.Idle || p.Stolen() {
			busy = append(busy, p.Name)
		}
	}
	return busy
}

// MicroMetric returns the value in unit of the Go benchmark name, if it ran.
func (r *Results) MicroMetric(name, unit string) (float64, bool) {
	for _, b := range r.Micro {
		if b.Name == name {
			v, ok := b.Metrics[unit]
			return v, ok
		}
	}
	return 0, false
}

// Target is one goal from the benchmark issue, with what this run measured.
type Target struct {
	Name  string  `json:"name"`
	Op    string  `json:"op"` // "<=" or ">="
	Limit float64 `json:"limit"`
	Unit  string  `json:"unit"`
	Got   float64 `json:"got"`
	// Have is false when the run did not measure it (a path failed, no root).
	Have bool `json:"measured"`
	Met  bool `json:"met"`
}

func newTarget(name, op string, limit float64, unit string, got float64, have bool) Target {
	t := Target{Name: name, Op: op, Limit: limit, Unit: unit, Got: got, Have: have && !math.IsNaN(got) && !math.IsInf(got, 0)}
	if !t.Have {
		t.Got = 0 // JSON has no NaN
	}
	if t.Have {
		if op == "<=" {
			t.Met = got <= limit
		} else {
			t.Met = got >= limit
		}
	}
	return t
}

// Verdict says whether the target is met and, if not, by how much it is missed.
func (t Target) Verdict() string {
	switch {
	case !t.Have:
		return "not measured"
	case t.Met:
		return "met"
	case t.Limit == 0:
		return fmt.Sprintf("MISSED by %s %s", num(t.Got-t.Limit), t.Unit)
	case t.Op == "<=":
		return fmt.Sprintf("MISSED: %.2f× the limit (+%s %s)", t.Got/t.Limit, num(t.Got-t.Limit), t.Unit)
	default:
		return fmt.Sprintf("MISSED: %.0f%% of the goal (−%s %s)", 100*t.Got/t.Limit, num(t.Limit-t.Got), t.Unit)
	}
}

func num(v float64) string {
	switch a := math.Abs(v); {
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// Micro benchmark names the targets read.
const (
	BenchLookupPrefix = "BenchmarkLookupScale/"
	BenchRoute        = "BenchmarkRoute"
	// BenchQUICFloor (transport/masque) reports cpu-s/GB, switches/GB and
	// Gbps; the lab runs it itself (QUICFloorOf).
	BenchQUICFloor   = "BenchmarkDatagramFloor"
	BenchProcess     = "BenchmarkProcessBatch"
	BenchIdle100k    = "BenchmarkIdleSessions/100k"
	BenchIdle10k     = "BenchmarkIdleSessions/10k"
	UnitBytesSession = "B/session"
	// BenchPropagation (edge/propagation_test.go) reports, for each stage,
	// STAGE-p50-ms and STAGE-p99-ms: the delay from sending a write to edge 1
	// until that stage of edge 2 has it.
	BenchPropagation = "BenchmarkPropagation"
)

// propagationStages are BenchPropagation's stages, with what each measures.
var propagationStages = []struct{ stage, label string }{
	{"ack", "edge 1 acknowledges it"},
	{"api", "edge 2's API returns it"},
	{"dataplane", "edge 2's data plane forwards to it"},
	{"agent", "a connector's long poll on edge 2 returns it"},
}

// propagationGoal is the "well under a second", as a limit on p99.
const propagationGoal = 1000 // ms

// Targets of issue 20.
const (
	FloorGoal      = 2.2  // edge CPU per GB ≤ 2.2× the crypto floor
	HubCPUGoal     = 0.5  // edge CPU per GB ≤ 0.5× the go.mod hub's
	HubSpeedGoal   = 1.25 // site to site ≥ 1.25× the go.mod hub chain
	GatewayCPUGoal = 1.10 // a connector ≤ 1.10× a go.mod wireguard-go gateway's CPU per GB at the offered rate
	MASQUESpeed    = 0.5  // MASQUE site to site ≥ 0.5× WireGuard's
	MASQUECPU      = 2    // MASQUE edge CPU per GB ≤ 2× WireGuard's
	RTTGoal        = 0.1  // ms added by the edge over the direct go.mod tunnel
)

// median returns the median of s, or NaN when it holds no sample.
func median(s Summary) float64 {
	if !s.Valid() {
		return math.NaN()
	}
	return s.Median
}

// EvaluateTargets fills r.Targets from the paths, the crypto floor and the
// micro benchmarks. The references are the go.mod wireguard-go paths only:
// Debian's build is a footnote in the ratios, never a target's basis.
func (r *Results) EvaluateTargets() {
	s2s, masque := r.Find(PathSiteToSite), r.Find(PathSiteToSiteMASQUE)
	hub, direct := r.Find(PathWGHubGomod), r.Find(PathWGDirectGomod)
	ok := func(vs ...float64) bool {
		for _, v := range vs {
			if math.IsNaN(v) || v == 0 {
				return false
			}
		}
		return true
	}
	var ts []Target
	floor := math.NaN()
	if r.Floor != nil {
		floor = median(r.Floor.Total)
	}
	for _, l := range loads {
		edge := median(s2s.DaemonCPU("edge", l.load))
		ts = append(ts, newTarget("edge CPU / crypto floor, site to site, "+l.label, "<=", FloorGoal, "×", edge/floor, ok(edge, floor)))
	}
	for _, l := range loads {
		edge, h := median(s2s.DaemonCPU("edge", l.load)), median(hub.DaemonCPU("hub wireguard-go", l.load))
		ts = append(ts, newTarget("edge CPU / go.mod wireguard-go hub CPU, "+l.label, "<=", HubCPUGoal, "×", edge/h, ok(edge, h)))
	}
	tput := []struct {
		label string
		f     func(*Path) Summary
	}{{"1 stream", func(p *Path) Summary { return p.TCP1 }}, {"4 streams", func(p *Path) Summary { return p.TCP4 }}}
	of := func(p *Path, f func(*Path) Summary) float64 {
		if p == nil {
			return math.NaN()
		}
		return median(f(p))
	}
	for _, c := range tput {
		a, h := of(s2s, c.f), of(hub, c.f)
		ts = append(ts, newTarget("site-to-site / go.mod wireguard-go hub chain, TCP "+c.label, ">=", HubSpeedGoal, "×", a/h, ok(a, h)))
	}
	for _, g := range []struct{ conn, gw string }{{"connector A", "gwa wireguard-go"}, {"connector B", "gwb wireguard-go"}} {
		c, w := median(s2s.DaemonCPU(g.conn, LoadRate)), median(direct.DaemonCPU(g.gw, LoadRate))
		ts = append(ts, newTarget(g.conn+" CPU / go.mod wireguard-go gateway CPU, offered rate", "<=", GatewayCPUGoal, "×", c/w, ok(c, w)))
	}
	for _, c := range tput {
		m, w := of(masque, c.f), of(s2s, c.f)
		ts = append(ts, newTarget("MASQUE / WireGuard site to site, TCP "+c.label, ">=", MASQUESpeed, "×", m/w, ok(m, w)))
	}
	for _, l := range loads {
		m, w := median(masque.DaemonCPU("edge", l.load)), median(s2s.DaemonCPU("edge", l.load))
		ts = append(ts, newTarget("MASQUE / WireGuard edge CPU per GB, "+l.label, "<=", MASQUECPU, "×", m/w, ok(m, w)))
	}
	ra, rd := of(s2s, func(p *Path) Summary { return p.RTT }), of(direct, func(p *Path) Summary { return p.RTT })
	ts = append(ts, newTarget("RTT added by the edge over the direct go.mod wireguard-go tunnel", "<=", RTTGoal, "ms", ra-rd, ok(ra, rd)))
	for _, c := range []struct{ sub, label string }{
		{"v4/1M/spread", "IPv4, 64k destinations"}, {"v6/1M/spread", "IPv6, 64k destinations"},
		{"v4/1M/hot", "IPv4, 256 destinations"}, {"v6/1M/hot", "IPv6, 256 destinations"},
	} {
		v, have := r.MicroMetric(BenchLookupPrefix+c.sub, "ns/op")
		ts = append(ts, newTarget("route lookup at 1M routes ("+c.label+")", "<=", 30, "ns", v, have))
	}
	for _, n := range []string{BenchRoute, BenchProcess} {
		v, have := r.MicroMetric(n, "allocs/op")
		ts = append(ts, newTarget("allocations per forwarded packet ("+n+")", "<=", 0, "allocs", v, have))
	}
	idle := BenchIdle100k
	v, have := r.MicroMetric(idle, UnitBytesSession)
	if !have {
		idle = BenchIdle10k
		v, have = r.MicroMetric(idle, UnitBytesSession)
	}
	ts = append(ts, newTarget("memory per idle session ("+strings.TrimPrefix(idle, "BenchmarkIdleSessions/")+")", "<=", 4, "KiB", v/1024, have))
	for _, st := range propagationStages[1:] {
		v, have := r.MicroMetric(BenchPropagation, st.stage+"-p99-ms")
		ts = append(ts, newTarget("write on edge 1 until "+st.label+", p99", "<=", propagationGoal, "ms", v, have))
	}
	r.Targets = ts
}

// WriteJSON writes the results to path.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	return nil
}

// WriteTable prints the idle verdict, the paths, the crypto floor, the
// ratios and the targets.
func (r *Results) WriteTable(out io.Writer) {
	rate := ""
	if r.Rate != "" {
		rate = ", offered-rate run at " + r.Rate
	}
	fmt.Fprintf(out, "\nSwitchyard benchmark, %s, %d CPUs, kernel %s: median [min–max] of %d runs of %d s%s\n",
		r.Started.UTC().Format(time.RFC3339), r.Host.CPUs, r.Host.Kernel, r.Reps, r.Seconds, rate)
	r.writeIdle(out)
	if len(r.Paths) == 0 {
		fmt.Fprintln(out, "\nNo lab paths were measured (the lab needs root).")
	} else {
		r.writePaths(out)
	}
	r.writeMicro(out)

	fmt.Fprintln(out, "\nTargets (issue 20; never asserted in tests; only same-run ratios count):")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "target\tgoal\tthis run\tgot / goal\tverdict")
	for _, t := range r.Targets {
		got, rat := "—", "—"
		if t.Have {
			got = num(t.Got) + " " + t.Unit
			if t.Limit != 0 {
				rat = fmt.Sprintf("%.2f", t.Got/t.Limit)
			}
		}
		op := "≤"
		if t.Op == ">=" {
			op = "≥"
		}
		fmt.Fprintf(w, "%s\t%s %s %s\t%s\t%s\t%s\n", t.Name, op, num(t.Limit), t.Unit, got, rat, t.Verdict())
	}
	w.Flush()
	if busy := r.Busy(); len(busy) > 0 {
		fmt.Fprintf(out, "\n!!! NOT A QUIET RUN: %s measured on a busy machine (see above); do not quote these figures.\n", strings.Join(busy, ", "))
	}
}

// writeIdle prints what each path's wait for an idle machine found, with a
// banner when any path had to be measured on a busy one.
func (r *Results) writeIdle(out io.Writer) {
	if len(r.Paths) == 0 {
		return
	}
	fmt.Fprintf(out, "\nIdle machine before each path (other processes below %.0f%% of a core over %.0f s, waiting at most %.0f s), and the hypervisor's steal while it was measured:\n",
		100*r.Idle.Threshold, r.Idle.Window, r.Idle.Max)
	if r.Floor != nil {
		fmt.Fprintf(out, "  crypto floor: %s\n", r.Floor.Idle)
	}
	if r.QUICFloor != nil {
		fmt.Fprintf(out, "  quic-go datagram floor: %s\n", r.QUICFloor.Idle)
	}
	for _, p := range r.Paths {
		steal := ""
		if p.Stolen() {
			steal = " !!!"
		}
		fmt.Fprintf(out, "  %s: %s; steal while measured %.1f%% (limit %d%%)%s\n", p.Name, p.Idle, p.Steal, MaxStealPct, steal)
	}
	if busy := r.Busy(); len(busy) > 0 {
		fmt.Fprintf(out, "!!! NOT A QUIET RUN: %d of %d paths were measured on a busy machine: %s\n", len(busy), len(r.Paths), strings.Join(busy, ", "))
	}
}

// writePaths prints the lab's tables and the ratios.
func (r *Results) writePaths(out io.Writer) {
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "path\tTCP 1 stream Gbps\tTCP 4 streams Gbps\toffered rate Gbps\tUDP 64 B kpps\tUDP loss %\tRTT ms")
	for _, p := range r.Paths {
		kpps := p.UDP64
		kpps = Summary{Median: kpps.Median / 1e3, Min: kpps.Min / 1e3, Max: kpps.Max / 1e3, Samples: kpps.Samples}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.TCP1.Format(2), p.TCP4.Format(2), p.Rate.Format(2), kpps.Format(0), p.UDPLoss.Format(0), p.RTT.Format(3))
	}
	w.Flush()
	writeDaemonTable(out, r.Paths, "CPU seconds per GB received, per daemon and for the whole machine:", 2, func(p *Path) []LoadFigures { return p.CPU })
	writeDaemonTable(out, r.Paths, "Context switches per GB received, per daemon (all threads; each a sleep and a wakeup) and for the whole machine:", 0,
		func(p *Path) []LoadFigures { return p.Switches })
	fmt.Fprintln(out, "\nTCP retransmissions per GB received (iperf3's senders):")
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "path\t1 stream\t4 streams\toffered rate")
	for _, p := range r.Paths {
		if d := p.Retransmits; len(d.TCP1.Samples)+len(d.TCP4.Samples)+len(d.Rate.Samples) > 0 {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.Name, d.TCP1.Format(0), d.TCP4.Format(0), d.Rate.Format(0))
		}
	}
	w.Flush()
	for _, p := range r.Paths {
		for _, e := range p.Errors {
			fmt.Fprintf(out, "  %s: %s\n", p.Name, e)
		}
	}

	s2s := r.Find(PathSiteToSite)
	r.writeFloor(out, s2s)
	if s2s != nil {
		r.writeRatios(out, s2s)
		r.writeMASQUERatios(out, s2s)
	}
	r.writeTrunkRatios(out)
	r.writeUserspaceRatios(out)
	r.writeHop(out, s2s)
}

// writeHop prints the RTT the edge's path adds over the direct tunnel next
// to what a bare relay adds between the direct tunnel's own ends: one more
// process on the path, doing no work, which is what any middle box costs on
// this machine before it does anything.
func (r *Results) writeHop(out io.Writer, s2s *Path) {
	relay, direct := r.Find(PathWGRelayGomod), r.Find(PathWGDirectGomod)
	if relay == nil || direct == nil || !relay.RTT.Valid() || !direct.RTT.Valid() {
		return
	}
	fmt.Fprintf(out, "\nRTT added over the direct go.mod wireguard-go tunnel: by a bare relay between its ends (no crypto, no routing) %.3f ms",
		relay.RTT.Median-direct.RTT.Median)
	if s2s != nil && s2s.RTT.Valid() {
		fmt.Fprintf(out, "; by the edge, with its connectors at the ends, %.3f ms (goal ≤ %.1f ms)", s2s.RTT.Median-direct.RTT.Median, RTTGoal)
	}
	fmt.Fprintln(out)
}

// writeDaemonTable prints, under title, each path's per-daemon figures that
// of picks, one row per daemon and a column per load, with prec decimals.
func writeDaemonTable(out io.Writer, paths []*Path, title string, prec int, of func(*Path) []LoadFigures) {
	fmt.Fprintln(out, "\n"+title)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "path\tdaemon\t1 stream\t4 streams\toffered rate")
	for _, p := range paths {
		for _, d := range of(p) {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Name, d.Role, d.TCP1.Format(prec), d.TCP4.Format(prec), d.Rate.Format(prec))
		}
	}
	w.Flush()
}

// writeFloor prints the crypto floor and the site-to-site edge's CPU per GB against it.
func (r *Results) writeFloor(out io.Writer, s2s *Path) {
	f := r.Floor
	if f == nil {
		return
	}
	fmt.Fprintf(out, "\nCrypto floor (ChaCha20-Poly1305 of golang.org/x/crypto, %d B, one core, this run): Open %s + Seal %s = %s s/GB\n",
		f.Size, f.Open.Format(2), f.Seal.Format(2), f.Total.Format(2))
	if s2s == nil {
		return
	}
	var parts []string
	for _, l := range loads {
		parts = append(parts, l.label+" "+ratio(median(s2s.DaemonCPU("edge", l.load)), median(f.Total)))
	}
	fmt.Fprintf(out, "site-to-site edge CPU per GB / crypto floor: %s (goal ≤ %.1f×)\n", strings.Join(parts, ", "), FloorGoal)
	relay := r.Find(PathWGRelayGomod)
	if relay == nil {
		return
	}
	parts = parts[:0]
	for _, l := range loads {
		own := median(s2s.DaemonCPU("edge", l.load)) - median(relay.DaemonCPU("relay", l.load))
		parts = append(parts, l.label+" "+ratio(own, median(f.Total)))
	}
	fmt.Fprintf(out, "the same, less a bare relay's CPU per GB (the hop's socket I/O, wakeups and the kernel's delivery, which any middle box pays): %s\n", strings.Join(parts, ", "))
}

// ratioHeader is the columns of every ratio table.
var ratioHeader = "\tTCP 1\tTCP 4\tUDP 64 B\tRTT\tCPU 1 stream\tCPU 4 streams\tCPU offered rate"

// ratioRow is one row of a ratio table: a against b, the CPU columns
// charging cpuA(load) against cpuB(load).
func ratioRow(label string, a, b *Path, cpuA, cpuB func(Load) float64) string {
	row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", label, ratio(a.TCP1.Median, b.TCP1.Median), ratio(a.TCP4.Median, b.TCP4.Median),
		ratio(a.UDP64.Median, b.UDP64.Median), ratio(a.RTT.Median, b.RTT.Median))
	for _, l := range loads {
		c := "—"
		if cpuA != nil && cpuB != nil {
			c = ratio(cpuA(l.load), cpuB(l.load))
		}
		row += "\t" + c
	}
	return row + "\n"
}

// cpuOf returns the median CPU per GB of role on p under a load.
func cpuOf(p *Path, role string) func(Load) float64 {
	return func(l Load) float64 { return median(p.DaemonCPU(role, l)) }
}

// writeUserspaceRatios prints the userspace client's TCP throughput against
// the kernel client's, when both ran.
func (r *Results) writeUserspaceRatios(out io.Writer) {
	us, k := r.Find(PathUserspaceClientToSite), r.Find(PathClientToSite)
	if us == nil || k == nil {
		return
	}
	writeRatioTable(out, "userspace client (access tcp) / kernel client (TCP only)",
		[]string{ratioRow("client userspace / kernel", us, k, cpuOf(us, "edge"), cpuOf(k, "edge"))})
}

// writeRatios prints the single-edge site-to-site path against the go.mod
// wireguard-go and the kernel, and Debian's wireguard-go as a footnote,
// those of them that ran.
func (r *Results) writeRatios(out io.Writer, s2s *Path) {
	rows := func(refs []struct{ name, label, mid string }) []string {
		var rows []string
		for _, ref := range refs {
			q := r.Find(ref.name)
			if q == nil {
				continue
			}
			var mid func(Load) float64
			if ref.mid != "" {
				mid = cpuOf(q, ref.mid)
			}
			rows = append(rows, ratioRow(ref.label, s2s, q, cpuOf(s2s, "edge"), mid))
		}
		return rows
	}
	writeRatioTable(out, "Switchyard / go.mod wireguard-go (higher is better for throughput, lower for RTT and CPU; CPU: edge / middle daemon)",
		rows([]struct{ name, label, mid string }{
			{PathWGHubGomod, "site-to-site / hub chain", "hub wireguard-go"},
			{PathWGDirectGomod, "site-to-site / direct", ""},
			{PathWGRelayGomod, "site-to-site / direct through a relay", "relay"},
			{PathKernel, "site-to-site / kernel", ""},
		}))
	writeRatioTable(out, "footnote, Debian's wireguard-go (no offloads; not a basis for any claim)",
		rows([]struct{ name, label, mid string }{
			{PathWGHub, "site-to-site / Debian hub chain", "hub wireguard-go"},
			{PathWGDirect, "site-to-site / Debian direct", ""},
		}))
}

// writeMASQUERatios prints site to site over MASQUE against over WireGuard.
func (r *Results) writeMASQUERatios(out io.Writer, s2s *Path) {
	m := r.Find(PathSiteToSiteMASQUE)
	if m == nil {
		return
	}
	writeRatioTable(out, "MASQUE / WireGuard, site to site (CPU: edge / edge)",
		[]string{ratioRow("MASQUE / WireGuard", m, s2s, cpuOf(m, "edge"), cpuOf(s2s, "edge"))})
	if r.QUICFloor != nil {
		writeQUICFloor(out, m, s2s, r.QUICFloor)
	}
	writeMASQUEBound(out, m, s2s, r.QUICFloor)
}

// writeQUICFloor prints quic-go's datagram floor and the edges' CPU per GB against it.
func writeQUICFloor(out io.Writer, m, s2s *Path, f *QUICFloor) {
	fmt.Fprintf(out, "quic-go datagram floor (BenchmarkDatagramFloor: bare QUIC, one SendDatagram and one ReceiveDatagram per full-size datagram, loopback, this run): %s s/GB, %s context switches per GB, at %s Gbps\n",
		f.CPU.Format(2), f.Switches.Format(0), f.Gbps.Format(2))
	var over, under []string
	for _, l := range loads {
		over = append(over, l.label+" "+ratio(median(m.DaemonCPU("edge", l.load)), median(f.CPU)))
		under = append(under, l.label+" "+ratio(median(f.CPU), median(s2s.DaemonCPU("edge", l.load))))
	}
	fmt.Fprintf(out, "MASQUE edge CPU per GB / quic-go datagram floor: %s\n", strings.Join(over, ", "))
	fmt.Fprintf(out, "quic-go datagram floor / WireGuard edge CPU per GB: %s (MASQUE's goal of ≤ %g× the WireGuard edge's CPU is out of reach through quic-go where this exceeds it)\n",
		strings.Join(under, ", "), float64(MASQUECPU))
}

// writeMASQUEBound prints what sets MASQUE's throughput where the path
// saturates the machine's cores: the whole machine's CPU per GB against
// WireGuard's; and, with quic-go's floor measured, the most MASQUE could
// move if its daemons paid no more than that floor on each of the path's
// two QUIC hops. The rest of the machine (TUN reads and writes, the
// kernel's TCP and delivery, iperf3) would cost what it costs on the
// WireGuard path: all of it but the WireGuard transport's work, which is
// about twice the edge's (connector A encrypts and sends each packet,
// connector B receives and decrypts it, the edge does both).
func writeMASQUEBound(out io.Writer, m, s2s *Path, floor *QUICFloor) {
	if !m.DaemonCPU(RoleMachine, LoadTCP1).Valid() || !s2s.DaemonCPU(RoleMachine, LoadTCP1).Valid() {
		return
	}
	var used, best []string
	for _, l := range loads[:2] { // saturated: the offered rate fixes the throughput
		wg, edge := median(s2s.DaemonCPU(RoleMachine, l.load)), median(s2s.DaemonCPU("edge", l.load))
		used = append(used, l.label+" "+ratio(median(m.DaemonCPU(RoleMachine, l.load)), wg))
		if floor != nil && wg > 2*edge {
			best = append(best, l.label+" "+ratio(wg, 2*median(floor.CPU)+wg-2*edge))
		}
	}
	fmt.Fprintf(out, "whole machine CPU per GB, MASQUE / WireGuard (every process and the kernel; saturated, throughput follows its inverse): %s\n",
		strings.Join(used, ", "))
	if len(best) > 0 {
		fmt.Fprintf(out, "MASQUE / WireGuard throughput at best, its daemons at quic-go's floor on each of the two QUIC hops and the rest as on WireGuard: %s (goal ≥ %g×)\n",
			strings.Join(best, ", "), MASQUESpeed)
	}
}

// writeRatioTable prints rows under a title and the ratio columns, if there are any rows.
func writeRatioTable(out io.Writer, title string, rows []string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(out, "\nRatios of medians, %s:\n", title)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, ratioHeader)
	for _, row := range rows {
		fmt.Fprint(w, row)
	}
	w.Flush()
}

// trunkEdges are the daemons of PathSiteToSiteTrunk whose CPU the cross-edge
// ratios charge: both edges, as the single-edge path charges its one.
var trunkEdges = []string{"edge 1", "edge 2"}

// writeTrunkRatios prints the cross-edge path against the single-edge one
// and the wireguard-go hub chains, those of them that ran.
func (r *Results) writeTrunkRatios(out io.Writer) {
	trunk := r.Find(PathSiteToSiteTrunk)
	if trunk == nil {
		return
	}
	var rows []string
	edges := func(l Load) float64 { return trunk.CPUSum(l, trunkEdges...) }
	for _, ref := range []struct{ name, label, mid string }{
		{PathSiteToSite, "cross-edge / single-edge site-to-site", "edge"},
		{PathWGHubGomod, "cross-edge / hub chain (go.mod wireguard-go)", "hub wireguard-go"},
		{PathWGHub, "cross-edge / hub chain (Debian wireguard-go, footnote)", "hub wireguard-go"},
	} {
		q := r.Find(ref.name)
		if q == nil {
			continue
		}
		rows = append(rows, ratioRow(ref.label, trunk, q, edges, cpuOf(q, ref.mid)))
	}
	writeRatioTable(out, "cross-edge (edge 1 ═ trunk ═ edge 2) / reference (CPU: both edges / middle daemon)", rows)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || a == 0 || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// writeMicro prints the Go benchmarks the report is about, if they ran.
func (r *Results) writeMicro(out io.Writer) {
	type row struct{ name, unit, label string }
	rows := []row{
		{BenchRoute, "ns/op", "router: one forwarding decision"},
		{BenchRoute, "allocs/op", "router: allocations per decision"},
		{BenchProcess, "cpu-s/GB", "transport: decrypt + re-encrypt, CPU s/GB"},
		{"BenchmarkRouteNewFlows", "ns/op", "router: first packet of a new flow (policy + flow table)"},
		{"BenchmarkEvaluate", "ns/op", "policy: evaluate a flow against the rules"},
		{"BenchmarkPacket", "ns/op", "flow: flow table lookup per packet"},
		{"BenchmarkHandshake", "switchyard-hs/s/core", "transport: complete handshakes/s per core"},
		{"BenchmarkHandshake", "wggo-hs/s/core", "  the same with wireguard-go's Noise code"},
	}
	for _, n := range []string{"1k", "100k", "1M"} {
		for _, fam := range []string{"v4", "v6"} {
			rows = append(rows, row{BenchLookupPrefix + fam + "/" + n + "/spread", "ns/op", "routing: lookup, " + n + " " + fam + " routes, 64k destinations"},
				row{BenchLookupPrefix + fam + "/" + n + "/hot", "ns/op", "routing: lookup, " + n + " " + fam + " routes, 256 destinations"})
		}
	}
	for _, n := range []string{"10k", "100k"} {
		name := "BenchmarkIdleSessions/" + n
		rows = append(rows, row{name, UnitBytesSession, "scale: heap per idle session, " + n},
			row{name, "s/add-peers", "scale: authorizing " + n + " peers, s"},
			row{name, "s/bring-up", "scale: handshakes and confirmation of " + n + ", s"},
			row{name, "handshakes/s", "scale: edge handshakes/s, " + n},
			row{name, "idle-cpu-%", "scale: idle timers, % of a core, " + n})
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	printed := false
	for _, rw := range rows {
		v, ok := r.MicroMetric(rw.name, rw.unit)
		if !ok {
			continue
		}
		if !printed {
			fmt.Fprintln(out, "\nGo benchmarks (bin/bench/micro.txt has all):")
			printed = true
		}
		fmt.Fprintf(w, "%s\t%s %s\n", rw.label, num(v), rw.unit)
	}
	for _, st := range propagationStages {
		p50, ok50 := r.MicroMetric(BenchPropagation, st.stage+"-p50-ms")
		p99, ok99 := r.MicroMetric(BenchPropagation, st.stage+"-p99-ms")
		if !ok50 || !ok99 {
			continue
		}
		if !printed {
			fmt.Fprintln(out, "\nGo benchmarks (bin/bench/micro.txt has all):")
			printed = true
		}
		fmt.Fprintf(w, "cluster: write on edge 1 until %s\tp50 %s ms, p99 %s ms\n", st.label, num(p50), num(p99))
	}
	w.Flush()
}
