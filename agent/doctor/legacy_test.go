package doctor

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"testing"
)

// TestLegacyFirewall reads `iptables-legacy -S FORWARD` output as the tools
// print it: a drop policy without accept rules for the TUN warns with the
// fix, accepted traffic and an accept policy pass, and a host without the
// tools gets no check.
func TestLegacyFirewall(t *testing.T) {
	tests := []struct {
		name   string
		v4, v6 string // "" with missing: not installed
		fixes  []string
		checks int // firewall-legacy checks in all
	}{
		{name: "not installed", checks: 0},
		{name: "policy accept", v4: "-P FORWARD ACCEPT\n", v6: "-P FORWARD ACCEPT\n", checks: 2},
		{name: "drop, nothing accepted", v4: "-P FORWARD DROP\n-A FORWARD -i eth0 -j ACCEPT\n", checks: 2,
			fixes: []string{"iptables-legacy -I FORWARD -i sy0 -j ACCEPT", "iptables-legacy -I FORWARD -o sy0 -j ACCEPT"}},
		{name: "drop, both accepted (one by a wildcard)", v4: "-P FORWARD DROP\n-A FORWARD -i sy0 -j ACCEPT\n-A FORWARD -o sy+ -j ACCEPT\n", checks: 1},
		{name: "an accept with a condition is not all the TUN's traffic", checks: 1,
			v6:    "-P FORWARD DROP\n-A FORWARD -i sy0 -j ACCEPT\n-A FORWARD -o sy0 -p tcp -m tcp --dport 22 -j ACCEPT\n",
			fixes: []string{"ip6tables-legacy -I FORWARD -o sy0 -j ACCEPT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runner := func(_ context.Context, tool string) (string, error) {
				out := map[string]string{"iptables-legacy": tt.v4, "ip6tables-legacy": tt.v6}[tool]
				if out == "" {
					return "", fmt.Errorf("exec: %q: %w", tool, exec.ErrNotFound)
				}
				return out, nil
			}
			cfg := Config{Role: "connector", TunName: "sy0", Host: gateway(), Legacy: runner}
			cs := Run(context.Background(), cfg).Find("firewall-legacy")
			var fixes []string
			for _, c := range cs {
				if c.Status == Fail {
					t.Errorf("a legacy rule set fails doctor: %+v (it warns: the nftables checks are the authority)", c)
				}
				if c.Status == Warn {
					fixes = append(fixes, c.Fix)
				}
			}
			if len(cs) != tt.checks {
				t.Errorf("%d checks, want %d: %+v", len(cs), tt.checks, cs)
			}
			if !slices.Equal(fixes, tt.fixes) {
				t.Errorf("fixes %q, want %q (%+v)", fixes, tt.fixes, cs)
			}
		})
	}
}

// TestLegacyFirewallError: a tool that is there but fails warns, naming it.
func TestLegacyFirewallError(t *testing.T) {
	runner := func(_ context.Context, tool string) (string, error) {
		return "", errors.New(tool + " -S FORWARD: exit status 4: Permission denied (you must be root)")
	}
	cs := Run(context.Background(), Config{Role: "connector", TunName: "sy0", Host: gateway(), Legacy: runner}).Find("firewall-legacy")
	if len(cs) != 2 || cs[0].Status != Warn || cs[0].Detail == "" {
		t.Fatalf("checks %+v, want two warnings", cs)
	}
}
