package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// IperfTCP is what a TCP iperf3 run delivered.
type IperfTCP struct {
	Bytes   float64 // received by the server
	Seconds float64
	Gbps    float64 // received bits per second / 1e9
	// Retransmits counts the sender's TCP retransmissions (end.sum_sent):
	// what the path dropped, as the inner TCP saw it.
	Retransmits float64
}

// IperfUDP is what a UDP iperf3 run delivered.
type IperfUDP struct {
	Sent, Lost, Delivered float64 // packets; Delivered = Sent - Lost
	Bytes                 float64 // payload bytes the server received
	Seconds               float64
	PPS                   float64 // Delivered / Seconds
}

type iperfSum struct {
	Seconds     float64 `json:"seconds"`
	Bytes       float64 `json:"bytes"`
	BPS         float64 `json:"bits_per_second"`
	Packets     float64 `json:"packets"`
	LostPackets float64 `json:"lost_packets"`
	Retransmits float64 `json:"retransmits"`
}

type iperfDoc struct {
	Error string `json:"error"`
	End   struct {
		Sum         *iperfSum `json:"sum"`
		SumSent     *iperfSum `json:"sum_sent"`
		SumReceived *iperfSum `json:"sum_received"`
	} `json:"end"`
}

func parseIperf(out []byte) (*iperfDoc, error) {
	var d iperfDoc
	if err := json.Unmarshal(out, &d); err != nil {
		return nil, fmt.Errorf("parse iperf3 JSON: %w", err)
	}
	if d.Error != "" {
		return nil, fmt.Errorf("iperf3: %s", d.Error)
	}
	return &d, nil
}

// ParseIperfTCP reads the receiver's totals from `iperf3 -J` output of a TCP run.
func ParseIperfTCP(out []byte) (IperfTCP, error) {
	d, err := parseIperf(out)
	if err != nil {
		return IperfTCP{}, err
	}
	r := d.End.SumReceived
	if r == nil || r.Seconds <= 0 {
		return IperfTCP{}, errors.New("parse iperf3 JSON: no end.sum_received (not a TCP run?)")
	}
	t := IperfTCP{Bytes: r.Bytes, Seconds: r.Seconds, Gbps: r.Bytes * 8 / r.Seconds / 1e9}
	if d.End.SumSent != nil {
		t.Retransmits = d.End.SumSent.Retransmits
	}
	return t, nil
}

// ParseIperfUDP reads the receiver's packet counts from `iperf3 -u -J`
// output: end.sum_received when present (iperf3 ≥ 3.11), else end.sum, whose
// packets and lost_packets are the server's.
func ParseIperfUDP(out []byte) (IperfUDP, error) {
	d, err := parseIperf(out)
	if err != nil {
		return IperfUDP{}, err
	}
	r := d.End.SumReceived
	if r == nil || r.Packets == 0 {
		r = d.End.Sum
	}
	if r == nil || r.Seconds <= 0 {
		return IperfUDP{}, errors.New("parse iperf3 JSON: no end.sum_received or end.sum (not a UDP run?)")
	}
	u := IperfUDP{Sent: r.Packets, Lost: r.LostPackets, Bytes: r.Bytes, Seconds: r.Seconds}
	u.Delivered = max(u.Sent-u.Lost, 0)
	u.PPS = u.Delivered / u.Seconds
	return u, nil
}

// userHZ is the unit of utime and stime in /proc/PID/stat on Linux.
const userHZ = 100

// ParseProcStat returns utime+stime from the contents of /proc/PID/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func ParseProcStat(stat []byte) (time.Duration, error) {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("parse /proc/PID/stat: no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/PID/stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc/PID/stat: utime/stime: %w", err)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// ParseSwitches returns a thread's context switches, voluntary and
// involuntary, from the contents of /proc/PID/task/TID/status.
func ParseSwitches(status []byte) (uint64, error) {
	var n uint64
	var found int
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "voluntary_ctxt_switches" && k != "nonvoluntary_ctxt_switches") {
			continue
		}
		c, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/PID/task/TID/status: %s: %w", k, err)
		}
		n += c
		found++
	}
	if found != 2 {
		return 0, errors.New("parse /proc/PID/task/TID/status: want voluntary_ctxt_switches and nonvoluntary_ctxt_switches")
	}
	return n, nil
}

var pingRTT = regexp.MustCompile(`(?m)^(?:rtt|round-trip) min/avg/max/(?:mdev|stddev) = ([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+) ms`)
var pingCount = regexp.MustCompile(`(?m)^(\d+) packets transmitted, (\d+) (?:packets )?received`)

// Ping is the summary line of iputils ping.
type Ping struct {
	Sent, Received      int
	Min, Avg, Max, Mdev float64 // milliseconds
}

// ParsePing reads the "N packets transmitted, M received" and "rtt
// min/avg/max/mdev" lines that ping -q prints.
func ParsePing(out []byte) (Ping, error) {
	var p Ping
	c := pingCount.FindSubmatch(out)
	if c == nil {
		return p, errors.New("parse ping output: no packets transmitted/received line")
	}
	p.Sent, _ = strconv.Atoi(string(c[1]))
	p.Received, _ = strconv.Atoi(string(c[2]))
	m := pingRTT.FindSubmatch(out)
	if m == nil {
		return p, fmt.Errorf("parse ping output: no rtt line (%d of %d replies)", p.Received, p.Sent)
	}
	vals := make([]float64, 4)
	for i := range vals {
		v, err := strconv.ParseFloat(string(m[i+1]), 64)
		if err != nil {
			return p, fmt.Errorf("parse ping output: %w", err)
		}
		vals[i] = v
	}
	p.Min, p.Avg, p.Max, p.Mdev = vals[0], vals[1], vals[2], vals[3]
	return p, nil
}

// GoBench is one result line of `go test -bench`: the benchmark's name
// without the -GOMAXPROCS suffix, and each reported metric by unit.
type GoBench struct {
	Name    string             `json:"name"`
	Pkg     string             `json:"pkg,omitempty"`
	Metrics map[string]float64 `json:"metrics"`
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// ParseGoBench reads every "BenchmarkX-N  iters  v unit  v unit ..." line
// of `go test -bench` output, tagged with the package of the preceding
// "pkg:" line; other lines, and NaN or infinite metrics, are skipped.
func ParseGoBench(out []byte) []GoBench {
	var res []GoBench
	pkg := ""
	for line := range strings.Lines(string(out)) {
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
			continue
		}
		b := GoBench{Name: procsSuffix.ReplaceAllString(f[0], ""), Pkg: pkg, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				continue // JSON has no NaN; a NaN metric was not measured
			}
			b.Metrics[f[i+1]] = v
		}
		res = append(res, b)
	}
	return res
}
