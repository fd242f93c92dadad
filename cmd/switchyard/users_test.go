package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// TestEnrollmentRuleCLI walks enrollment rule add, list, remove, user list
// and logout through the real binary, with the refusals' exit codes.
func TestEnrollmentRuleCLI(t *testing.T) {
	dir := t.TempDir()
	startEdge(t, dir)
	if out := mustCLI(t, dir, "enrollment", "rule", "add", "--email-domain", "example.com", "--session-duration", "8h", "corp"); !strings.Contains(out, "Added enrollment rule corp") || !strings.Contains(out, "8h0m0s") {
		t.Fatalf("enrollment rule add: %q", out)
	}
	mustCLI(t, dir, "enrollment", "rule", "add", "--group", "sy-admins", "--session-duration", "7d", "--precedence", "0", "admins")
	rules := jsonCLI[[]model.EnrollmentRule](t, dir, "enrollment rule list")
	if len(rules) != 2 || rules[0].Name != "admins" || rules[0].SessionDuration != 7*24*time.Hour || rules[1].EmailDomains[0] != "example.com" {
		t.Fatalf("enrollment rule list: %+v", rules)
	}
	if list := mustCLI(t, dir, "enrollment", "rule", "list"); !strings.Contains(list, "SESSION DURATION") || !strings.Contains(list, "sy-admins") {
		t.Fatalf("enrollment rule list:\n%s", list)
	}
	if out := mustCLI(t, dir, "enrollment", "login-command"); !strings.Contains(out, "client up --login --edge https://") || !strings.Contains(out, "--edge-ca-pin sha256/") {
		t.Fatalf("enrollment login-command: %q", out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"enrollment", "rule", "add", "nobody"}, 2, "admits nobody"},
		{[]string{"enrollment", "rule", "add", "--email-domain", "bad_domain", "x"}, 2, "domain"},
		{[]string{"enrollment", "rule", "add", "--group", "g", "--session-duration", "10s", "x"}, 2, "outside 1m to 90d"},
		{[]string{"enrollment", "rule", "add", "--group", "g", "--session-duration", "soon", "x"}, 2, "give a duration such as 8h"},
		{[]string{"enrollment", "rule", "add", "--group", "g", "corp"}, 4, "a rule named corp exists"},
		{[]string{"enrollment", "rule", "remove", "nope"}, 3, "not found"},
		{[]string{"user", "logout", "alice@example.com"}, 3, "has no device with a sign-in session"},
	} {
		_, errOut, err := run(t, dir, tc.args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("switchyard %s: %v, %q; want exit %d saying %q", strings.Join(tc.args, " "), err, errOut, tc.code, tc.want)
		}
	}
	if out := mustCLI(t, dir, "enrollment", "rule", "remove", "corp"); !strings.Contains(out, "Removed enrollment rule corp") {
		t.Fatalf("enrollment rule remove: %q", out)
	}
	if users := jsonCLI[[]model.User](t, dir, "user list"); len(users) != 0 {
		t.Fatalf("user list: %+v", users)
	}
}
