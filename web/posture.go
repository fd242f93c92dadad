package web

import (
	"strings"

	"github.com/switchyard/switchyard/control/model"
)

func init() { funcs["posture"] = postureSummary }

// postureSummary is a device's posture in a line, as the devices page
// shows it: "linux 12, kernel 6.1.0-18-amd64, client 0.18.2, disk
// encrypted, firewall on, serial SN-1, on office". Unreported texts are left
// out.
func postureSummary(p *model.Posture) string {
	if p == nil {
		return "not reported"
	}
	var parts []string
	add := func(label, v string) {
		if v != "" {
			parts = append(parts, strings.TrimSpace(label+" "+v))
		}
	}
	add("", strings.TrimSpace(p.OS+" "+p.OSVersion))
	add("kernel", p.Kernel)
	add("client", p.ClientVersion)
	if p.DiskEncrypted {
		parts = append(parts, "disk encrypted")
	} else {
		parts = append(parts, "disk not encrypted")
	}
	if p.Firewall {
		parts = append(parts, "firewall on")
	} else {
		parts = append(parts, "firewall off")
	}
	add("serial", p.Serial)
	add("on", p.Network)
	return strings.Join(parts, ", ")
}
