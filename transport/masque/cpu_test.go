package masque

import "time"

// usage is a process's CPU time and context switches.
type usage struct {
	cpu      time.Duration
	switches int64
}

// sub is u less an earlier reading.
func (u usage) sub(o usage) usage { return usage{u.cpu - o.cpu, u.switches - o.switches} }
