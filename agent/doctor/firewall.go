package doctor

import (
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/routing/host"
)

// firewall checks that every forward-hook chain whose policy is drop
// accepts the traffic into and out of tunIf; chains with policy accept, and
// drop rules that match other traffic, are not judged.
func firewall(fi host.FirewallInspector, tunIf string) []Check {
	chains, err := fi.ForwardChains()
	if err != nil {
		return []Check{{Name: "firewall", Status: Warn, Detail: err.Error()}}
	}
	var out []Check
	for _, ch := range chains {
		if !ch.PolicyDrop {
			continue
		}
		where := fmt.Sprintf("%s %s %s", ch.Family, ch.Table, ch.Chain)
		for _, dir := range []struct {
			names     []string
			nft, ipt  string
			direction string
		}{
			{ch.AcceptIn, "iifname", "-i", "from"},
			{ch.AcceptOut, "oifname", "-o", "to"},
		} {
			if slices.ContainsFunc(dir.names, func(n string) bool { return ifaceMatch(n, tunIf) }) {
				continue
			}
			c := Check{Name: "firewall", Status: Fail,
				Detail: fmt.Sprintf("chain %s drops forwarded packets by policy and accepts none %s %s", where, dir.direction, tunIf)}
			if ch.IPTables {
				tool := "iptables"
				if ch.Family == "ip6" {
					tool = "ip6tables"
				}
				c.Fix = fmt.Sprintf("%s -I FORWARD %s %s -j ACCEPT", tool, dir.ipt, tunIf)
			} else {
				c.Fix = fmt.Sprintf("nft insert rule %s %s %s %s %s accept", ch.Family, ch.Table, ch.Chain, dir.nft, tunIf)
			}
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		out = append(out, Check{Name: "firewall", Status: OK, Detail: "no forward chain drops traffic of " + tunIf + " by policy"})
	}
	return out
}

// ifaceMatch reports whether a rule's interface name (a trailing "*" is a
// prefix) matches name.
func ifaceMatch(rule, name string) bool {
	if p, ok := strings.CutSuffix(rule, "*"); ok {
		return strings.HasPrefix(name, p)
	}
	return rule == name
}
