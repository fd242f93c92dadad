package wireguard

import (
	"bytes"
	"os"
)

// procStat reads the first line of /proc/stat ("cpu user nice system idle
// iowait irq softirq steal ..."), in clock ticks, through one file kept
// open. Only spareCPU's refreshing goroutine uses it.
type procStat struct {
	f   *os.File
	buf [256]byte
}

// newCPUSource returns the kernel's counters, or nil when /proc/stat cannot
// be opened (then every large batch may fan out, as on other systems).
func newCPUSource() cpuSource {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil
	}
	return &procStat{f: f}
}

func (p *procStat) read() (idle, total uint64, ok bool) {
	n, _ := p.f.ReadAt(p.buf[:], 0)
	return parseProcStat(p.buf[:n])
}

func (p *procStat) close() { p.f.Close() }

// parseProcStat reads the aggregate cpu line: idle is idle + iowait, total
// the sum of user to steal (steal counts as busy: another guest had the core).
func parseProcStat(b []byte) (idle, total uint64, ok bool) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	rest, found := bytes.CutPrefix(line, []byte("cpu "))
	if !found {
		return 0, 0, false
	}
	fields := 0
	for fields < 8 {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			break
		}
		var v uint64
		i := 0
		for ; i < len(rest) && rest[i] != ' '; i++ {
			if rest[i] < '0' || rest[i] > '9' {
				return 0, 0, false
			}
			v = v*10 + uint64(rest[i]-'0')
		}
		if fields == 3 || fields == 4 {
			idle += v
		}
		total += v
		fields++
		rest = rest[i:]
	}
	return idle, total, fields >= 5
}
