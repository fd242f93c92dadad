package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestDNSCLI walks dns resolver add, list, remove and dns zone through the
// real binary, with the exit codes and messages of refusals.
func TestDNSCLI(t *testing.T) {
	dir := t.TempDir()
	startEdge(t, dir)
	mustCLI(t, dir, "tunnel", "vnet", "add", "lab")
	if out := mustCLI(t, dir, "dns", "resolver", "add", "Corp.Example", "10.1.0.53", "[2001:db8::53]:5353"); !strings.Contains(out, "for corp.example in virtual network default: 10.1.0.53:53,[2001:db8::53]:5353") {
		t.Fatalf("dns resolver add: %q", out)
	}
	mustCLI(t, dir, "dns", "resolver", "add", "--vnet", "lab", "corp.example", "10.2.0.53")
	list := mustCLI(t, dir, "dns", "resolver", "list")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "VNET") || !strings.Contains(lines[1], "default") || !strings.Contains(lines[2], "lab") || !strings.Contains(lines[2], "10.2.0.53:53") {
		t.Fatalf("dns resolver list:\n%s", list)
	}
	rs := jsonCLI[[]model.DNSResolver](t, dir, "dns resolver list", "--vnet", "lab")
	if len(rs) != 1 || rs[0].Domain != "corp.example" {
		t.Fatalf("list --vnet lab: %+v", rs)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dns", "resolver", "add", "corp.example"}, 2, "needs DOMAIN SERVER[:PORT]..."},
		{[]string{"dns", "resolver", "add", "*.corp.example", "10.1.0.53"}, 2, "has a wildcard"},
		{[]string{"dns", "resolver", "add", "x.example", "10.1.0.53:0"}, 2, "has port 0"},
		{[]string{"dns", "resolver", "add", "x.example", "ns1.x.example"}, 2, `DNS server "ns1.x.example" is not an IP address`},
		{[]string{"dns", "resolver", "add", "corp.example", "10.1.0.54"}, 4, "already has a resolver for corp.example"},
		{[]string{"dns", "resolver", "add", "--vnet", "nope", "x.example", "10.1.0.54"}, 3, "not found"},
		{[]string{"dns", "resolver", "remove", "other.example"}, 3, "has no resolver for other.example"},
		{[]string{"dns", "zone", "set", "bad_zone"}, 2, "DNS zone: domain"},
		{[]string{"dns", "zone", "bogus"}, 2, "takes no arguments"},
	} {
		_, errOut, err := run(t, dir, tc.args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("switchyard %s: %v, %q; want exit %d saying %q", strings.Join(tc.args, " "), err, errOut, tc.code, tc.want)
		}
	}
	mustCLI(t, dir, "dns", "resolver", "remove", "--vnet", "lab", "corp.example")
	def := jsonCLI[[]model.DNSResolver](t, dir, "dns resolver list", "--vnet", "default")
	if out := mustCLI(t, dir, "dns", "resolver", "remove", def[0].ID.String()); !strings.Contains(out, "Removed resolver "+def[0].ID.String()+" for corp.example") {
		t.Fatalf("remove by id: %q", out)
	}
	if rs := jsonCLI[[]model.DNSResolver](t, dir, "dns resolver list"); len(rs) != 0 {
		t.Fatalf("list after removes: %+v", rs)
	}
	if out := mustCLI(t, dir, "dns", "zone"); strings.TrimSpace(out) != "sy.internal" {
		t.Fatalf("dns zone: %q", out)
	}
	if out := mustCLI(t, dir, "dns", "zone", "set", "Names.Corp.Example"); !strings.Contains(out, "names.corp.example") {
		t.Fatalf("dns zone set: %q", out)
	}
	if z := jsonCLI[model.DNSZone](t, dir, "dns zone"); z.Zone != "names.corp.example" {
		t.Fatalf("dns zone -o json: %+v", z)
	}
}
