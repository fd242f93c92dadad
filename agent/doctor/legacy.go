package doctor

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// LegacyRunner runs an iptables-legacy tool ("iptables-legacy",
// "ip6tables-legacy") with "-S FORWARD" and returns its output; an error
// matching exec.ErrNotFound means the tool is not installed.
type LegacyRunner func(ctx context.Context, tool string) (string, error)

// RunLegacy is the LegacyRunner of this host: it only reads the rules.
func RunLegacy(ctx context.Context, tool string) (string, error) {
	path, err := exec.LookPath(tool)
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, path, "-S", "FORWARD").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s -S FORWARD: %w: %s", tool, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// legacyFirewall checks the FORWARD chains of the legacy (x_tables)
// iptables, which the nftables checks do not see and which still drop
// packets where a host has rules in both: a drop policy that accepts
// nothing into or out of tunIf warns. Hosts without the tools get no check.
func legacyFirewall(ctx context.Context, run LegacyRunner, tunIf string) []Check {
	var out []Check
	for _, tool := range []string{"iptables-legacy", "ip6tables-legacy"} {
		rules, err := run(ctx, tool)
		if errors.Is(err, exec.ErrNotFound) {
			continue
		}
		if err != nil {
			out = append(out, Check{Name: "firewall-legacy", Status: Warn, Detail: err.Error()})
			continue
		}
		drop, in, outIf := parseLegacyForward(rules)
		if !drop {
			out = append(out, Check{Name: "firewall-legacy", Status: OK, Detail: tool + ": FORWARD does not drop by policy"})
			continue
		}
		ok := true
		for _, dir := range []struct {
			names      []string
			flag, word string
		}{{in, "-i", "from"}, {outIf, "-o", "to"}} {
			if slices.ContainsFunc(dir.names, func(n string) bool { return ifaceMatch(strings.Replace(n, "+", "*", 1), tunIf) }) {
				continue
			}
			ok = false
			out = append(out, Check{Name: "firewall-legacy", Status: Warn,
				Detail: fmt.Sprintf("%s: FORWARD drops by policy and accepts nothing %s %s", tool, dir.word, tunIf),
				Fix:    fmt.Sprintf("%s -I FORWARD %s %s -j ACCEPT", tool, dir.flag, tunIf)})
		}
		if ok {
			out = append(out, Check{Name: "firewall-legacy", Status: OK, Detail: tool + ": FORWARD drops by policy but accepts " + tunIf})
		}
	}
	return out
}

// parseLegacyForward reads iptables -S FORWARD: whether the policy is DROP,
// and the interfaces of its unconditional ACCEPT rules by direction.
func parseLegacyForward(rules string) (drop bool, in, out []string) {
	for line := range strings.Lines(rules) {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "-P" && f[1] == "FORWARD":
			drop = f[2] == "DROP"
		case len(f) == 6 && f[0] == "-A" && f[1] == "FORWARD" && f[4] == "-j" && f[5] == "ACCEPT":
			switch f[2] {
			case "-i":
				in = append(in, f[3])
			case "-o":
				out = append(out, f[3])
			}
		}
	}
	return drop, in, out
}
