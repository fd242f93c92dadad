package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestRouteAddIfNotExists runs route ip add --if-not-exists through the real
// binary: a repeat of the same route succeeds with the existing one, the
// same network to another tunnel still fails with the duplicate route error.
func TestRouteAddIfNotExists(t *testing.T) {
	dir := t.TempDir()
	startEdge(t, dir)
	mustCLI(t, dir, "tunnel", "create", "site-a")
	mustCLI(t, dir, "tunnel", "create", "site-b")
	if out := mustCLI(t, dir, "tunnel", "route", "ip", "add", "--if-not-exists", "192.0.2.0/24", "site-a"); !strings.Contains(out, "Successfully added route") {
		t.Fatalf("first add: %s", out)
	}
	out := mustCLI(t, dir, "tunnel", "route", "ip", "add", "--if-not-exists", "192.0.2.0/24", "site-a", "adopted")
	if !strings.Contains(out, "Route for 192.0.2.0/24 over tunnel site-a in virtual network default already exists") {
		t.Fatalf("repeated add with --if-not-exists: %s", out)
	}
	for _, args := range [][]string{
		{"tunnel", "route", "ip", "add", "--if-not-exists", "192.0.2.0/24", "site-b"},
		{"tunnel", "route", "ip", "add", "192.0.2.0/24", "site-a"},
	} {
		_, errOut, err := run(t, dir, args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 4 || !strings.Contains(errOut, "exact IP subnet") {
			t.Errorf("switchyard %s: %v, %q; want exit 4 saying the route exists", strings.Join(args, " "), err, errOut)
		}
	}
	routes := jsonCLI[[]model.Route](t, dir, "tunnel route ip show")
	if len(routes) != 1 || routes[0].TunnelName != "site-a" || routes[0].Comment != "" {
		t.Fatalf("routes: %+v, want the first alone", routes)
	}
}
