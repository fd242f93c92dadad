package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name          string
		in            []float64
		med, min, max float64
		valid         bool
		format        string
	}{
		{"odd", []float64{3, 1, 2}, 2, 1, 3, true, "2.00 [1.00–3.00]"},
		{"even", []float64{4, 1, 3, 2}, 2.5, 1, 4, true, "2.50 [1.00–4.00]"},
		{"one", []float64{7}, 7, 7, 7, true, "7.00"},
		{"NaN skipped", []float64{math.NaN(), 5, 1}, 3, 1, 5, true, "3.00 [1.00–5.00]"},
		{"empty", nil, 0, 0, 0, false, "—"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Summarize(tc.in)
			if s.Median != tc.med || s.Min != tc.min || s.Max != tc.max || s.Valid() != tc.valid {
				t.Errorf("Summarize(%v) = %+v, want median %v min %v max %v valid %v", tc.in, s, tc.med, tc.min, tc.max, tc.valid)
			}
			if got := s.Format(2); got != tc.format {
				t.Errorf("Format = %q, want %q", got, tc.format)
			}
		})
	}
	in := []float64{3, 1, 2}
	Summarize(in)
	if in[0] != 3 {
		t.Error("Summarize reordered its input")
	}
}

// Trimmed from iperf3 3.12 -J output.
const (
	iperfTCP = `{"start":{},"intervals":[],"end":{"streams":[],
		"sum_sent":{"start":0,"end":3.0,"seconds":3.0,"bytes":1400000000,"bits_per_second":3.7e9,"retransmits":12,"sender":true},
		"sum_received":{"start":0,"end":3.0,"seconds":3.0,"bytes":1350000000,"bits_per_second":3.6e9,"sender":true}}}`
	iperfUDP = `{"start":{},"end":{
		"sum":{"start":0,"end":1.000209,"seconds":1.000209,"bytes":6246592,"packets":97603,"lost_packets":0,"sender":true},
		"sum_sent":{"seconds":1.000088,"bytes":6246592,"packets":97603,"lost_packets":0,"sender":true},
		"sum_received":{"seconds":2.0,"bytes":3200000,"packets":100000,"lost_packets":50000,"sender":false}}}`
	iperfUDPOld = `{"end":{"sum":{"seconds":2.0,"bytes":6400,"packets":1000,"lost_packets":200,"lost_percent":20}}}`
	iperfError  = `{"start":{},"error":"unable to connect to server: Connection refused"}`
)

func TestParseIperf(t *testing.T) {
	tcp, err := ParseIperfTCP([]byte(iperfTCP))
	if err != nil {
		t.Fatal(err)
	}
	if tcp.Bytes != 1.35e9 || tcp.Seconds != 3 || math.Abs(tcp.Gbps-3.6) > 1e-9 || tcp.Retransmits != 12 {
		t.Errorf("TCP = %+v, want 1.35e9 bytes in 3 s = 3.6 Gbps (receiver side), 12 retransmits (sender side)", tcp)
	}
	udp, err := ParseIperfUDP([]byte(iperfUDP))
	if err != nil {
		t.Fatal(err)
	}
	if udp.Delivered != 50000 || udp.PPS != 25000 {
		t.Errorf("UDP = %+v, want 50000 delivered, 25000 pps (from sum_received)", udp)
	}
	old, err := ParseIperfUDP([]byte(iperfUDPOld))
	if err != nil {
		t.Fatal(err)
	}
	if old.Delivered != 800 || old.PPS != 400 {
		t.Errorf("UDP from end.sum = %+v, want 800 delivered, 400 pps", old)
	}
	if _, err := ParseIperfTCP([]byte(iperfError)); err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("iperf3 error: got %v, want the tool's message", err)
	}
	if _, err := ParseIperfTCP([]byte(iperfUDPOld)); err == nil {
		t.Error("a UDP document parsed as TCP")
	}
	if _, err := ParseIperfUDP([]byte("not json")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestParseSwitches(t *testing.T) {
	status := "Name:\tswitchyard\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1200\nnonvoluntary_ctxt_switches:\t34\n"
	got, err := ParseSwitches([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if got != 1234 {
		t.Errorf("switches = %d, want 1234 (1200 voluntary + 34 involuntary)", got)
	}
	for _, bad := range []string{"", "voluntary_ctxt_switches:\t5\n", "voluntary_ctxt_switches:\tx\nnonvoluntary_ctxt_switches:\t1\n"} {
		if _, err := ParseSwitches([]byte(bad)); err == nil {
			t.Errorf("ParseSwitches(%q) parsed", bad)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may contain spaces and parentheses.
	stat := "4242 (wireguard-go (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 12345 0 0 18446744073709551615\n"
	got, err := ParseProcStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want {
		t.Errorf("cpu = %v, want %v (utime 250 + stime 75 ticks)", got, want)
	}
	for _, bad := range []string{"", "1 (x S 1 2", "1 (x) S 1 2 3"} {
		if _, err := ParseProcStat([]byte(bad)); err == nil {
			t.Errorf("ParseProcStat(%q) succeeded", bad)
		}
	}
}

func TestParsePing(t *testing.T) {
	out := `PING 10.2.0.2 (10.2.0.2) 56(84) bytes of data.

--- 10.2.0.2 ping statistics ---
100 packets transmitted, 99 received, 1% packet loss, time 2012ms
rtt min/avg/max/mdev = 0.451/0.812/1.904/0.120 ms
`
	p, err := ParsePing([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if p.Sent != 100 || p.Received != 99 || p.Avg != 0.812 || p.Min != 0.451 || p.Max != 1.904 {
		t.Errorf("ParsePing = %+v", p)
	}
	if _, err := ParsePing([]byte("3 packets transmitted, 0 received, 100% packet loss, time 2002ms\n")); err == nil {
		t.Error("no replies: want an error")
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/switchyard/switchyard/routing
BenchmarkLookupScale/v4/1M/spread-2   	 5393535	       225.0 ns/op	       0 B/op	       0 allocs/op
--- SKIP: BenchmarkX
pkg: github.com/switchyard/switchyard/transport/wireguard
BenchmarkIdleSessions/10k-2         	       1	6553808311 ns/op	      2236 B/session	         1.417 s/bring-up
BenchmarkRoute   1000   12.5 ns/op   NaN speedup
PASS
`
	got := ParseGoBench([]byte(out))
	if len(got) != 3 {
		t.Fatalf("parsed %d benchmarks, want 3: %+v", len(got), got)
	}
	if got[0].Name != "BenchmarkLookupScale/v4/1M/spread" || got[0].Pkg != "github.com/switchyard/switchyard/routing" || got[0].Metrics["ns/op"] != 225 {
		t.Errorf("first = %+v", got[0])
	}
	if got[1].Metrics[UnitBytesSession] != 2236 || got[1].Metrics["s/bring-up"] != 1.417 {
		t.Errorf("second = %+v", got[1])
	}
	if _, ok := got[2].Metrics["speedup"]; ok || got[2].Name != "BenchmarkRoute" {
		t.Errorf("third = %+v (no -N suffix)", got[2])
	}
}

func TestQUICFloorOf(t *testing.T) {
	out := `pkg: github.com/switchyard/switchyard/transport/masque
2026/12/02 14:53:54 handling stream failed: H3_NO_ERROR (local)
BenchmarkDatagramFloor-2   	  400562	      9173 ns/op	 146.84 MB/s	         1.175 Gbps	        11.41 cpu-s/GB	         0 loss-%	     47215 switches/GB
BenchmarkDatagramFloor-2   	  370454	      9357 ns/op	 143.95 MB/s	         1.152 Gbps	        12.51 cpu-s/GB	         0 loss-%	     50838 switches/GB
BenchmarkDatagramFloor-2   	  397395	     10045 ns/op	 134.09 MB/s	         1.073 Gbps	        11.67 cpu-s/GB	         0 loss-%	     47740 switches/GB
BenchmarkForward-2   	  144705	     23702 ns/op	  59.03 MB/s	         0.4722 Gbps	        21.51 cpu-s/GB
PASS
`
	f, err := QUICFloorOf(ParseGoBench([]byte(out)))
	if err != nil {
		t.Fatal(err)
	}
	if f.CPU.Median != 11.67 || f.CPU.Min != 11.41 || f.CPU.Max != 12.51 || len(f.CPU.Samples) != 3 {
		t.Errorf("cpu = %+v, want 11.67 [11.41–12.51] of 3 (BenchmarkForward left out)", f.CPU)
	}
	if f.Switches.Median != 47740 || f.Gbps.Median != 1.152 {
		t.Errorf("switches %+v, Gbps %+v", f.Switches, f.Gbps)
	}
	if _, err := QUICFloorOf(ParseGoBench([]byte("BenchmarkDatagramFloor-2  10  5 ns/op  1.1 Gbps\n"))); err == nil {
		t.Error("a run without cpu-s/GB gave a floor")
	}
	if _, err := QUICFloorOf(nil); err == nil {
		t.Error("no run gave a floor")
	}
}

// cpu is a LoadFigures with the same samples under every load.
func cpu(role string, v ...float64) LoadFigures {
	s := Summarize(v)
	return LoadFigures{Role: role, TCP1: s, TCP4: s, Rate: s}
}

func TestTargets(t *testing.T) {
	sum := func(v ...float64) Summary { return Summarize(v) }
	idle := IdleWait{Idle: true, Waited: 2, Load: 0.03, Threshold: 0.1}
	r := &Results{Reps: 1, Seconds: 1, Rate: "700M",
		Floor:     &CryptoFloor{Size: 1350, Open: sum(0.5), Seal: sum(0.7), Total: sum(1.2)},
		QUICFloor: &QUICFloor{CPU: sum(9, 8, 11), Switches: sum(50000), Gbps: sum(1.2), Idle: idle},
		Paths: []*Path{
			{Name: PathWGHubGomod, Idle: idle, TCP1: sum(0.8), TCP4: sum(0.8), RTT: sum(1.39),
				CPU: []LoadFigures{cpu("gwa wireguard-go", 2), {Role: "hub wireguard-go", TCP1: sum(6), TCP4: sum(8), Rate: sum(5)}}},
			{Name: PathWGDirectGomod, Idle: idle, TCP1: sum(1.36), TCP4: sum(1.4), RTT: sum(0.95),
				CPU: []LoadFigures{cpu("gwa wireguard-go", 2), cpu("gwb wireguard-go", 2)}},
			{Name: PathWGHub, Idle: idle, TCP1: sum(0.4), TCP4: sum(0.4), CPU: []LoadFigures{cpu("hub wireguard-go", 20)}},
			{Name: PathWGRelayGomod, Idle: idle, TCP1: sum(1.1), RTT: sum(1.25),
				CPU:      []LoadFigures{cpu("gwa wireguard-go", 2), {Role: "relay", TCP1: sum(0.9), TCP4: sum(1.2), Rate: sum(1.5)}},
				Switches: []LoadFigures{cpu("gwa wireguard-go", 90000), cpu("relay", 52000, 48000, 61000)}},
			{Name: PathSiteToSite, Idle: idle, TCP1: sum(1.2), TCP4: sum(0.9), RTT: sum(1.0),
				CPU: []LoadFigures{cpu("connector A", 2.1), {Role: "edge", TCP1: sum(2.4), TCP4: sum(3.6), Rate: sum(2.5, 2.7, 9)}, cpu("connector B", 2.4),
					cpu(RoleMachine, 14)}},
			{Name: PathSiteToSiteMASQUE, Idle: IdleWait{Waited: 60, Load: 0.8, Threshold: 0.1}, TCP1: sum(0.3), TCP4: sum(0.9),
				CPU: []LoadFigures{{Role: "edge", TCP1: sum(12), TCP4: sum(6), Rate: sum(12)}, {Role: RoleMachine, TCP1: sum(42), TCP4: sum(35)}}},
		}, Micro: []GoBench{{Name: BenchRoute, Metrics: map[string]float64{"allocs/op": 0}},
			{Name: BenchPropagation, Metrics: map[string]float64{"agent-p50-ms": 14.1, "agent-p99-ms": 28.4, "api-p50-ms": 14.8, "api-p99-ms": 1200}}}}
	r.EvaluateTargets()
	byName := map[string]Target{}
	for _, tg := range r.Targets {
		byName[tg.Name] = tg
	}
	check := func(name string, have, met bool, verdict string) {
		t.Helper()
		tg, ok := byName[name]
		if !ok {
			t.Fatalf("no target %q in %+v", name, r.Targets)
		}
		if tg.Have != have || tg.Met != met || !strings.Contains(tg.Verdict(), verdict) {
			t.Errorf("%s: have %v met %v verdict %q; want %v %v %q", name, tg.Have, tg.Met, tg.Verdict(), have, met, verdict)
		}
	}
	check("edge CPU / crypto floor, site to site, 1 stream", true, true, "met")               // 2.4 / 1.2 = 2.0
	check("edge CPU / crypto floor, site to site, 4 streams", true, false, "1.36× the limit") // 3.6 / 1.2 = 3.0
	check("edge CPU / crypto floor, site to site, offered rate", true, false, "1.02× the limit")
	check("edge CPU / go.mod wireguard-go hub CPU, 1 stream", true, true, "met")           // 2.4 / 6 = 0.4
	check("edge CPU / go.mod wireguard-go hub CPU, offered rate", true, false, "1.08×")    // 2.7 / 5 = 0.54
	check("site-to-site / go.mod wireguard-go hub chain, TCP 1 stream", true, true, "met") // 1.2 / 0.8 = 1.5, not 3× Debian's
	check("site-to-site / go.mod wireguard-go hub chain, TCP 4 streams", true, false, "90% of the goal")
	check("connector A CPU / go.mod wireguard-go gateway CPU, offered rate", true, true, "met")
	check("connector B CPU / go.mod wireguard-go gateway CPU, offered rate", true, false, "1.09× the limit")
	check("MASQUE / WireGuard site to site, TCP 1 stream", true, false, "50% of the goal")
	check("MASQUE / WireGuard site to site, TCP 4 streams", true, true, "met")
	check("MASQUE / WireGuard edge CPU per GB, 4 streams", true, true, "met")
	check("MASQUE / WireGuard edge CPU per GB, 1 stream", true, false, "2.50× the limit")
	check("RTT added by the edge over the direct go.mod wireguard-go tunnel", true, true, "met")
	check("allocations per forwarded packet (BenchmarkRoute)", true, true, "met")
	check("memory per idle session (10k)", false, false, "not measured")
	check("write on edge 1 until a connector's long poll on edge 2 returns it, p99", true, true, "met")
	check("write on edge 1 until edge 2's API returns it, p99", true, false, "1.20× the limit (+200 ms)")
	check("write on edge 1 until edge 2's data plane forwards to it, p99", false, false, "not measured")
	for _, tg := range r.Targets {
		if strings.Contains(tg.Name, "Debian") {
			t.Errorf("target %q rests on Debian's wireguard-go", tg.Name)
		}
	}

	var buf bytes.Buffer
	r.WriteTable(&buf)
	for _, want := range []string{"switchyard-s2s", "site-to-site / hub chain", "1.50×", "MISSED", "offered-rate run at 700M",
		"Open 0.50 + Seal 0.70 = 1.20 s/GB", "site-to-site edge CPU per GB / crypto floor: 1 stream 2.00×, 4 streams 3.00×, offered rate 2.25×",
		"footnote, Debian's wireguard-go", "site-to-site / Debian hub chain",
		"wggo-hub-gomod: idle after 2.0 s (other processes 3% of a core, limit 10%)",
		"switchyard-s2s-masque: NOT IDLE: other processes still used 80% of a core (limit 10%) after waiting 60 s",
		"!!! NOT A QUIET RUN: 1 of 6 paths were measured on a busy machine: switchyard-s2s-masque",
		"cluster: write on edge 1 until a connector's long poll on edge 2 returns it", "p50 14.10 ms, p99 28.40 ms",
		"less a bare relay's CPU per GB (the hop's socket I/O, wakeups and the kernel's delivery, which any middle box pays): 1 stream 1.25×, 4 streams 2.00×, offered rate 1.00×",
		"by a bare relay between its ends (no crypto, no routing) 0.300 ms; by the edge, with its connectors at the ends, 0.050 ms",
		"Context switches per GB received",
		"quic-go datagram floor: idle after 2.0 s",
		"loopback, this run): 9.00 [8.00–11.00] s/GB, 50000 context switches per GB, at 1.20 Gbps",
		"MASQUE edge CPU per GB / quic-go datagram floor: 1 stream 1.33×, 4 streams 0.67×, offered rate 1.33×",
		"quic-go datagram floor / WireGuard edge CPU per GB: 1 stream 3.75×, 4 streams 2.50×, offered rate 3.33× (MASQUE's goal of ≤ 2× ",
		"whole machine CPU per GB, MASQUE / WireGuard (every process and the kernel; saturated, throughput follows its inverse): 1 stream 3.00×, 4 streams 2.50×\n",
		// 14 / (2 × 9 + 14 − 2 × 2.4) and 14 / (2 × 9 + 14 − 2 × 3.6)
		"on each of the two QUIC hops and the rest as on WireGuard: 1 stream 0.51×, 4 streams 0.56× (goal ≥ 0.5×)"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	// line returns the cells of the table row that starts with label.
	line := func(label string) string {
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.HasPrefix(l, label+"  ") {
				return strings.Join(strings.Fields(strings.TrimPrefix(l, label)), " ")
			}
		}
		return ""
	}
	// TCP 1, TCP 4, UDP, RTT, CPU at 1 stream, 4 streams, offered rate.
	if got, want := line("site-to-site / hub chain"), "1.50× 1.12× — 0.72× 0.40× 0.45× 0.54×"; got != want {
		t.Errorf("hub chain row = %q, want %q:\n%s", got, want, buf.String())
	}
	if got, want := line("MASQUE / WireGuard"), "0.25× 1.00× — — 5.00× 1.67× 4.44×"; got != want {
		t.Errorf("MASQUE row = %q, want %q:\n%s", got, want, buf.String())
	}
	if got, want := line("site-to-site / direct through a relay"), "1.09× — — 0.80× 2.67× 3.00× 1.80×"; got != want {
		t.Errorf("relay row = %q, want %q:\n%s", got, want, buf.String())
	}
	// The relay's row of the context switches table (the CPU table has one too).
	_, switches, _ := strings.Cut(buf.String(), "Context switches per GB received")
	switches, _, _ = strings.Cut(switches, "\n\n")
	var relayRow string
	for _, l := range strings.Split(switches, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == PathWGRelayGomod && f[1] == "relay" {
			relayRow = strings.Join(f[2:], " ")
		}
	}
	if want := "52000 [48000–61000] 52000 [48000–61000] 52000 [48000–61000]"; relayRow != want {
		t.Errorf("relay's switches row = %q, want %q:\n%s", relayRow, want, buf.String())
	}
	if !strings.Contains(buf.String(), "2.70 [2.50–9.00]") {
		t.Errorf("CPU table lacks the edge's offered-rate spread:\n%s", buf.String())
	}
	if err := r.WriteJSON(t.TempDir() + "/r.json"); err != nil {
		t.Error(err)
	}
}

func TestTrunkRatios(t *testing.T) {
	sum := func(v ...float64) Summary { return Summarize(v) }
	s2s := &Path{Name: PathSiteToSite, TCP1: sum(1.2), TCP4: sum(1.6), UDP64: sum(40e3), RTT: sum(0.6), CPU: []LoadFigures{cpu("edge", 3)}}
	hub := &Path{Name: PathWGHub, TCP1: sum(0.6), TCP4: sum(0.8), UDP64: sum(20e3), RTT: sum(1.2), CPU: []LoadFigures{cpu("hub wireguard-go", 9)}}
	trunk := &Path{Name: PathSiteToSiteTrunk, TCP1: sum(0.9), TCP4: sum(1.2), UDP64: sum(30e3), RTT: sum(0.9),
		CPU: []LoadFigures{cpu("connector A", 2), cpu("edge 1", 2, 2.2), cpu("edge 2", 2.4), cpu("connector B", 2)}}
	// line returns the table's row that starts with label, its cells split on runs of spaces.
	line := func(table, label string) []string {
		for _, l := range strings.Split(table, "\n") {
			if strings.HasPrefix(l, label+"  ") {
				return strings.Fields(strings.TrimPrefix(l, label))
			}
		}
		return nil
	}
	tests := []struct {
		name  string
		paths []*Path
		rows  map[string][]string // label: TCP 1, TCP 4, UDP, RTT, CPU 1, 4, offered rate
	}{
		{"all", []*Path{hub, s2s, trunk}, map[string][]string{
			// CPU: edge 1 (median 2.1) + edge 2 (2.4) = 4.5 s/GB against the one edge's 3 and the hub's 9.
			"cross-edge / single-edge site-to-site":                  {"0.75×", "0.75×", "0.75×", "1.50×", "1.50×", "1.50×", "1.50×"},
			"cross-edge / hub chain (Debian wireguard-go, footnote)": {"1.50×", "1.50×", "1.50×", "0.75×", "0.50×", "0.50×", "0.50×"},
		}},
		{"no single-edge path", []*Path{hub, trunk}, map[string][]string{
			"cross-edge / single-edge site-to-site":                  nil,
			"cross-edge / hub chain (Debian wireguard-go, footnote)": {"1.50×", "1.50×", "1.50×", "0.75×", "0.50×", "0.50×", "0.50×"},
		}},
		{"one edge's CPU missing", []*Path{s2s, {Name: PathSiteToSiteTrunk, TCP1: sum(0.9), CPU: []LoadFigures{cpu("edge 1", 2)}}}, map[string][]string{
			"cross-edge / single-edge site-to-site": {"0.75×", "—", "—", "—", "—", "—", "—"},
		}},
		{"cross-edge path alone", []*Path{trunk}, nil},
		{"single-edge path alone", []*Path{s2s}, nil},
		{"no cross-edge path", []*Path{hub, s2s}, map[string][]string{
			"cross-edge / single-edge site-to-site":                  nil,
			"cross-edge / hub chain (Debian wireguard-go, footnote)": nil,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Results{Reps: 1, Seconds: 1, Paths: tc.paths}
			r.EvaluateTargets()
			var buf bytes.Buffer
			r.WriteTable(&buf)
			for label, want := range tc.rows {
				if got := line(buf.String(), label); strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("row %q = %q, want %q:\n%s", label, got, want, buf.String())
				}
			}
			if r.Find(PathSiteToSite) == nil && strings.Contains(buf.String(), "Ratios of medians, Switchyard /") {
				t.Errorf("the single-edge ratios are printed without the single-edge path:\n%s", buf.String())
			}
			if len(tc.paths) == 1 && strings.Contains(buf.String(), "Ratios") {
				t.Errorf("ratios printed with nothing to compare to:\n%s", buf.String())
			}
		})
	}
}
