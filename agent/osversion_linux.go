package agent

import (
	"os"
	"strings"
)

// osVersion is the kernel release, as the device list shows it.
func osVersion() string {
	buf, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(buf))
}
