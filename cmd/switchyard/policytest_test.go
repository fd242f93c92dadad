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
