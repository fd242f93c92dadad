//go:build !unix

package wireguard

import "time"

// syscallRusage is empty here: the CPU figures read zero.
type syscallRusage struct{}

func getrusage(*syscallRusage) {}

func (*syscallRusage) total() time.Duration { return 0 }
