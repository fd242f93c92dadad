//go:build unix

package masque

import (
	"syscall"
	"time"
)

// processUsage is what this process used so far: CPU time and context
// switches (voluntary and involuntary) of all its threads.
func processUsage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), switches: int64(ru.Nvcsw + ru.Nivcsw)}
}
