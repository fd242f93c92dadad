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
)

// Results is everything one `make bench` run measured; it is written as JSON.
type Results struct {
	Started time.Time `json:"started"`
	Host    Host      `json:"host"`
	Reps    int       `json:"reps"`
	Seconds int       `json:"seconds_per_run"`
	Paths   []*Path   `json:"paths"`
	Micro   []GoBench `json:"micro,omitempty"`
	Targets []Target  `json:"targets"`
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
	// TCP1 and TCP4 are iperf3 TCP throughput in Gbps with 1 and 4 streams.
	TCP1 Summary `json:"tcp1_gbps"`
	TCP4 Summary `json:"tcp4_gbps"`
	// UDP64 is UDP packets per second delivered with 64-byte payloads.
	UDP64 Summary `json:"udp64_pps"`
	// UDPLoss is the percentage of those packets lost at full blast (-b 0).
	UDPLoss Summary `json:"udp64_loss_pct"`
	// RTT is the average ping round trip in milliseconds.
	RTT Summary `json:"rtt_ms"`
	// CPU is each daemon's CPU seconds per GB received over the TCP runs.
	CPU    []DaemonCPU `json:"cpu_s_per_gb,omitempty"`
	Errors []string    `json:"errors,omitempty"`
}

// DaemonCPU is one daemon's CPU cost.
type DaemonCPU struct {
	Role   string  `json:"role"`
	SPerGB Summary `json:"s_per_gb"`
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

// DaemonCPU returns the CPU summary of role on the path, or an empty one.
func (p *Path) DaemonCPU(role string) Summary {
	if p != nil {
		for _, d := range p.CPU {
			if d.Role == role {
				return d.SPerGB
			}
		}
	}
	return Summary{}
}

// CPUSum returns the sum of the median CPU costs of roles on the path, or 0
// if any of them was not measured.
func (p *Path) CPUSum(roles ...string) float64 {
	sum := 0.0
	for _, role := range roles {
		s := p.DaemonCPU(role)
		if !s.Valid() {
			return 0
		}
		sum += s.Median
	}
	return sum
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
	BenchProcess      = "BenchmarkProcessBatch"
	BenchIdle100k     = "BenchmarkIdleSessions/100k"
	BenchIdle10k      = "BenchmarkIdleSessions/10k"
	UnitBytesSession  = "B/session"
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

// EvaluateTargets fills r.Targets from the paths and micro benchmarks.
func (r *Results) EvaluateTargets() {
	s2s := r.Find(PathSiteToSite)
	edge := s2s.DaemonCPU("edge").Median
	med := func(p *Path, f func(*Path) Summary) float64 {
		if p == nil || !f(p).Valid() {
			return math.NaN()
		}
		return f(p).Median
	}
	tcp1 := func(p *Path) Summary { return p.TCP1 }
	tcp4 := func(p *Path) Summary { return p.TCP4 }
	rtt := func(p *Path) Summary { return p.RTT }
	ok := func(vs ...float64) bool {
		for _, v := range vs {
			if math.IsNaN(v) || v == 0 {
				return false
			}
		}
		return true
	}
	var ts []Target
	ts = append(ts, newTarget("edge CPU per forwarded GB", "<=", 2.5, "s/GB", edge, ok(edge)))
	// The goals name Debian's wireguard-go; the go.mod build, when measured, is held to the same.
	for i, ref := range []struct{ hub, direct, suffix string }{
		{PathWGHub, PathWGDirect, ""},
		{PathWGHubGomod, PathWGDirectGomod, " (go.mod wireguard-go)"},
	} {
		hub, direct := r.Find(ref.hub), r.Find(ref.direct)
		if i > 0 && hub == nil && direct == nil {
			continue
		}
		hubCPU := hub.DaemonCPU("hub wireguard-go").Median
		ts = append(ts, newTarget("edge CPU / wireguard-go hub CPU"+ref.suffix, "<=", 0.32, "×", edge/hubCPU, ok(edge, hubCPU)))
		for _, c := range []struct {
			label string
			f     func(*Path) Summary
		}{{"1 stream", tcp1}, {"4 streams", tcp4}} {
			a, h, d := med(s2s, c.f), med(hub, c.f), med(direct, c.f)
			ts = append(ts, newTarget("site-to-site / wireguard-go hub, TCP "+c.label+ref.suffix, ">=", 1.5, "×", a/h, ok(a, h)))
			ts = append(ts, newTarget("site-to-site / wireguard-go direct, TCP "+c.label+ref.suffix, ">=", 0.75, "×", a/d, ok(a, d)))
		}
		ra, rd := med(s2s, rtt), med(direct, rtt)
		ts = append(ts, newTarget("RTT added by the edge over the direct tunnel"+ref.suffix, "<=", 0.15, "ms", ra-rd, ok(ra, rd)))
	}
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

// WriteTable prints the paths, the Switchyard/wireguard-go ratios and the targets.
func (r *Results) WriteTable(out io.Writer) {
	fmt.Fprintf(out, "\nSwitchyard benchmark, %s, %d CPUs, kernel %s: median [min–max] of %d runs of %d s\n\n",
		r.Started.UTC().Format(time.RFC3339), r.Host.CPUs, r.Host.Kernel, r.Reps, r.Seconds)
	if len(r.Paths) == 0 {
		fmt.Fprintln(out, "No lab paths were measured (the lab needs root).")
	} else {
		r.writePaths(out)
	}
	r.writeMicro(out)

	fmt.Fprintln(out, "\nTargets (issue 5; never asserted in tests):")
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
}

// writePaths prints the lab's table and the Switchyard/wireguard-go ratios.
func (r *Results) writePaths(out io.Writer) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "path\tTCP 1 stream Gbps\tTCP 4 streams Gbps\tUDP 64 B kpps\tUDP loss %\tRTT ms\tCPU s/GB per daemon")
	for _, p := range r.Paths {
		var cpu []string
		for _, d := range p.CPU {
			cpu = append(cpu, d.Role+" "+d.SPerGB.Format(1))
		}
		kpps := p.UDP64
		kpps = Summary{Median: kpps.Median / 1e3, Min: kpps.Min / 1e3, Max: kpps.Max / 1e3, Samples: kpps.Samples}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.TCP1.Format(2), p.TCP4.Format(2), kpps.Format(0), p.UDPLoss.Format(0), p.RTT.Format(3), strings.Join(cpu, "; "))
	}
	w.Flush()
	for _, p := range r.Paths {
		for _, e := range p.Errors {
			fmt.Fprintf(out, "  %s: %s\n", p.Name, e)
		}
	}

	if s2s := r.Find(PathSiteToSite); s2s != nil {
		r.writeRatios(out, s2s)
	}
	r.writeTrunkRatios(out)
	r.writeUserspaceRatios(out)
}

// writeUserspaceRatios prints the userspace client's TCP throughput against
// the kernel client's, when both ran.
func (r *Results) writeUserspaceRatios(out io.Writer) {
	us, k := r.Find(PathUserspaceClientToSite), r.Find(PathClientToSite)
	if us == nil || k == nil {
		return
	}
	writeRatioTable(out, "userspace client (access tcp) / kernel client (TCP only)", "—",
		[]string{fmt.Sprintf("client userspace / kernel\t%s\t%s\t—\t—\t—\n", ratio(us.TCP1.Median, k.TCP1.Median), ratio(us.TCP4.Median, k.TCP4.Median))})
}

// writeRatios prints the single-edge site-to-site path against wireguard-go
// and the kernel, those of them that ran.
func (r *Results) writeRatios(out io.Writer, s2s *Path) {
	var rows []string
	for _, ref := range []struct{ name, label, mid string }{
		{PathWGHub, "site-to-site / hub chain", "hub wireguard-go"},
		{PathWGDirect, "site-to-site / direct", ""},
		{PathWGHubGomod, "site-to-site / hub chain (go.mod wireguard-go)", "hub wireguard-go"},
		{PathWGDirectGomod, "site-to-site / direct (go.mod wireguard-go)", ""},
		{PathKernel, "site-to-site / kernel", ""},
	} {
		q := r.Find(ref.name)
		if q == nil {
			continue
		}
		cpu := "—"
		if ref.mid != "" {
			cpu = ratio(s2s.DaemonCPU("edge").Median, q.DaemonCPU(ref.mid).Median)
		}
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\n", ref.label, ratio(s2s.TCP1.Median, q.TCP1.Median),
			ratio(s2s.TCP4.Median, q.TCP4.Median), ratio(s2s.UDP64.Median, q.UDP64.Median), ratio(s2s.RTT.Median, q.RTT.Median), cpu))
	}
	writeRatioTable(out, "Switchyard / wireguard-go (higher is better for throughput, lower for RTT and CPU)", "edge / middle daemon", rows)
}

// writeRatioTable prints rows under a title and the ratio columns, if there are any rows.
func writeRatioTable(out io.Writer, title, cpu string, rows []string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(out, "\nRatios of medians, %s:\n", title)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\tTCP 1\tTCP 4\tUDP 64 B\tRTT\tCPU: %s\n", cpu)
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
	edges := trunk.CPUSum(trunkEdges...)
	for _, ref := range []struct{ name, label, mid string }{
		{PathSiteToSite, "cross-edge / single-edge site-to-site", "edge"},
		{PathWGHub, "cross-edge / hub chain", "hub wireguard-go"},
		{PathWGHubGomod, "cross-edge / hub chain (go.mod wireguard-go)", "hub wireguard-go"},
	} {
		q := r.Find(ref.name)
		if q == nil {
			continue
		}
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\n", ref.label, ratio(trunk.TCP1.Median, q.TCP1.Median),
			ratio(trunk.TCP4.Median, q.TCP4.Median), ratio(trunk.UDP64.Median, q.UDP64.Median), ratio(trunk.RTT.Median, q.RTT.Median),
			ratio(edges, q.DaemonCPU(ref.mid).Median)))
	}
	writeRatioTable(out, "cross-edge (edge 1 ═ trunk ═ edge 2) / reference", "both edges / middle daemon", rows)
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
