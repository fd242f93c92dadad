package main

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestPolicyTestCLI asks the edge which rule judges a flow: the site's SSH
// hits the block rule, its HTTPS the default.
func TestPolicyTestCLI(t *testing.T) {
	dir := t.TempDir()
	startEdge(t, dir)
	mustCLI(t, dir, "tunnel", "create", "site-c")
	mustCLI(t, dir, "policy", "add", "--action", "block", "--when", "tunnel is site-c", "--when", "dst_port is 22", "no-ssh")
	out := mustCLI(t, dir, "policy", "test", "--tunnel", "site-c", "--src", "198.51.100.7", "--dst", "192.0.2.10", "--port", "22")
	if !strings.Contains(out, "Action:   block") || !strings.Contains(out, "no-ssh (precedence 10") {
		t.Fatalf("policy test of ssh:\n%s", out)
	}
	v := jsonCLI[model.FlowVerdict](t, dir, "policy test", "--tunnel", "site-c", "--src", "198.51.100.7", "--dst", "192.0.2.10", "--port", "443")
	if v.Action != model.ActionAllow || v.Policy != nil {
		t.Fatalf("policy test of https: %+v", v)
	}
}

// TestPolicyTestIdentityCLI adds group and posture rules with --when and
// asks the edge how it judges users with given groups and posture.
func TestPolicyTestIdentityCLI(t *testing.T) {
	dir := t.TempDir()
	startEdge(t, dir)
	mustCLI(t, dir, "policy", "add", "--action", "allow", "--when", "user.group is eng",
		"--when", "device.posture.os_version >= 12", "--when", "device.posture.disk_encrypted is true", "eng-patched")
	mustCLI(t, dir, "policy", "default", "block")
	test := func(args ...string) model.FlowVerdict {
		t.Helper()
		return jsonCLI[model.FlowVerdict](t, dir, "policy test", append([]string{"--src", "100.96.0.7", "--dst", "192.0.2.10", "--port", "443",
			"--user", "ana@example.com"}, args...)...)
	}
	if v := test("--group", "staff", "--group", "eng", "--posture", "os_version=12", "--posture", "disk_encrypted=true"); v.Action != model.ActionAllow || v.Policy == nil || v.Policy.Name != "eng-patched" {
		t.Fatalf("an eng user with a patched, encrypted device: %+v", v)
	}
	if v := test("--group", "sales", "--posture", "os_version=12", "--posture", "disk_encrypted=true"); v.Action != model.ActionBlock || v.Policy != nil {
		t.Fatalf("a sales user: %+v", v)
	}
	if v := test("--group", "eng", "--posture", "os_version=11.8", "--posture", "disk_encrypted=true"); v.Action != model.ActionBlock {
		t.Fatalf("an old OS: %+v", v)
	}
	if _, errOut, err := run(t, dir, "policy", "add", "--action", "allow", "--when", "device.posture.os >= 6", "x"); err == nil || !strings.Contains(errOut, "only device.posture.os_version") {
		t.Fatalf("a comparison on the OS name: %v, %q", err, errOut)
	}
}
