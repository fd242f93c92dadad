package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestSplitTunnelDomainCLI: split-tunnel add --domain keeps the canonical
// domain (list shows it), remove takes it by name, and bad domains are
// refused with the exit code of invalid input.
func TestSplitTunnelDomainCLI(t *testing.T) {
	dir := t.TempDir()
	startEdge(t, dir)
	mustCLI(t, dir, "split-tunnel", "mode", "include")
	if out := mustCLI(t, dir, "split-tunnel", "add", "--domain", "*.Corp.Example", "intranet"); !strings.Contains(out, "Added *.corp.example to the include list (1 entries)") {
		t.Fatalf("split-tunnel add --domain: %q", out)
	}
	mustCLI(t, dir, "split-tunnel", "add", "--domain", "example.com")
	mustCLI(t, dir, "split-tunnel", "add", "192.0.2.0/24")
	list := mustCLI(t, dir, "split-tunnel", "list")
	if !strings.Contains(list, "*.corp.example") || !strings.Contains(list, "intranet") || !strings.Contains(list, "example.com") || !strings.Contains(list, "192.0.2.0/24") {
		t.Fatalf("split-tunnel list:\n%s", list)
	}
	st := jsonCLI[model.SplitTunnel](t, dir, "split-tunnel list")
	if len(st.Entries) != 3 || st.Entries[0].Domain != "*.corp.example" || st.Entries[0].Address.IsValid() || st.Entries[2].Domain != "" {
		t.Fatalf("split-tunnel list -o json: %+v", st)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"split-tunnel", "add", "--domain", "a.*.example"}, 2, "split tunnel domain"},
		{[]string{"split-tunnel", "add", "--domain", "bad_name.example"}, 2, "split tunnel domain"},
		{[]string{"split-tunnel", "add", "--domain", "x.example", "a", "b"}, 2, "DOMAIN [DESCRIPTION]"},
		{[]string{"split-tunnel", "add", "--domain", "example.com"}, 4, "already in the include list"},
		{[]string{"split-tunnel", "remove", "other.example"}, 3, "not in the include list"},
	} {
		_, errOut, err := run(t, dir, tc.args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("switchyard %s: %v, %q; want exit %d saying %q", strings.Join(tc.args, " "), err, errOut, tc.code, tc.want)
		}
	}
	if out := mustCLI(t, dir, "split-tunnel", "remove", "*.corp.example"); !strings.Contains(out, "(2 entries)") {
		t.Fatalf("split-tunnel remove: %q", out)
	}
}
