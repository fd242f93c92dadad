package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestPolicyCLI walks policy add, list, show, update, move, delete and
// default through the real binary, with the exit codes of refusals.
func TestPolicyCLI(t *testing.T) {
	dir := t.TempDir()
	startEdge(t, dir)
	mustCLI(t, dir, "tunnel", "create", "site-c")
	p := jsonCLI[model.Policy](t, dir, "policy add", "--action", "block", "--when", "tunnel is site-c", "--when", "dst_port in 22, 2222", "no-ssh")
	if p.Precedence != 10 || len(p.Match.And) != 2 || p.Match.And[1].Values[1] != "2222" {
		t.Fatalf("added %+v", p)
	}
	mustCLI(t, dir, "policy", "add", "--action", "allow", "--any", "--when", "protocol is icmp", "--when", "user_email matches .*@example.com", "pings")
	mustCLI(t, dir, "policy", "move", "--before", "no-ssh", "pings")
	list := mustCLI(t, dir, "policy", "list")
	if i, j := strings.Index(list, "pings"), strings.Index(list, "no-ssh"); i < 0 || j < i || !strings.Contains(list, "protocol is icmp or user_email matches .*@example.com") || !strings.Contains(list, "(default)") {
		t.Fatalf("policy list after move:\n%s", list)
	}
	mustCLI(t, dir, "policy", "update", "--silent", "--comment", "no SSH from C", "no-ssh")
	show := mustCLI(t, dir, "policy", "show", "no-ssh")
	if !strings.Contains(show, "tunnel is site-c and dst_port in 22,2222") || !strings.Contains(show, "block (silent)") || !strings.Contains(show, "no SSH from C") || !strings.Contains(show, "dst_port in 22,2222") {
		t.Fatalf("policy show after update:\n%s", show)
	}
	if out := mustCLI(t, dir, "policy", "default", "block"); !strings.Contains(out, "Default action: block") {
		t.Fatalf("policy default: %s", out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"policy", "add", "--action", "block", "--when", "dst_ip is 10.1.2.3/33", "x"}, 2, "not a valid CIDR"},
		{[]string{"policy", "add", "--action", "block", "--when", "dst_port is 0-70000", "x"}, 2, "out of range"},
		{[]string{"policy", "add", "--action", "block", "--when", "user_email matches [", "x"}, 2, "invalid regular expression"},
		{[]string{"policy", "add", "--action", "block", "--when", "colour is red", "x"}, 2, "unknown selector"},
		{[]string{"policy", "add", "--action", "block", "x"}, 2, "--when or --match"},
		{[]string{"policy", "add", "--action", "allow", "--when", "protocol is tcp", "no-ssh"}, 4, "already exists"},
		{[]string{"policy", "show", "nope"}, 3, "not found"},
	} {
		_, errOut, err := run(t, dir, tc.args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("switchyard %s: %v, %q; want exit %d saying %q", strings.Join(tc.args, " "), err, errOut, tc.code, tc.want)
		}
	}
	mustCLI(t, dir, "policy", "update", "--match", `{"or":[{"selector":"protocol","operator":"is","values":["icmp"]},{"and":[{"selector":"protocol","operator":"is","values":["udp"]},{"selector":"dst_port","operator":"in","values":["53","5353"]}]}]}`, "pings")
	if show := mustCLI(t, dir, "policy", "show", "pings"); !strings.Contains(show, "protocol is icmp or (protocol is udp and dst_port in 53,5353)") {
		t.Fatalf("policy show after --match:\n%s", show)
	}
	mustCLI(t, dir, "policy", "delete", "pings")
	if ps := jsonCLI[[]model.Policy](t, dir, "policy list"); len(ps) != 1 || ps[0].Name != "no-ssh" {
		t.Fatalf("after delete: %+v", ps)
	}
	if out := mustCLI(t, dir, "flows", "tail"); out != "" {
		t.Fatalf("flows tail with no traffic: %q", out)
	}
}
