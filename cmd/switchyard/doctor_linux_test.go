package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/agent/doctor"
	"github.com/switchyard/switchyard/internal/lab"
)

// runDoctor runs `switchyard doctor -o json` inside ns and decodes its
// report; failed says whether it exited non-zero.
func runDoctor(t *testing.T, ns *lab.NS, args ...string) (rep doctor.Report, failed bool) {
	t.Helper()
	out, err := ns.Exec(append([]string{binary, "doctor", "-o", "json"}, args...)...)
	// stderr follows the JSON when a check failed.
	if jerr := json.NewDecoder(bytes.NewReader([]byte(out))).Decode(&rep); jerr != nil {
		t.Fatalf("doctor output: %v: %v\n%s", jerr, err, out)
	}
	return rep, err != nil
}

// one returns the single check of rep called name.
func one(t *testing.T, rep doctor.Report, name string) doctor.Check {
	t.Helper()
	cs := rep.Find(name)
	if len(cs) != 1 {
		t.Fatalf("%d %s checks, want 1: %+v", len(cs), name, rep.Checks)
	}
	return cs[0]
}

// TestDoctorGateway runs doctor on a gateway namespace with forwarding off,
// a route that takes part of a tunnel prefix away from the tunnel and a
// strict rp_filter on its LAN and an nftables forward chain that drops
// by policy and accepts nothing of the TUN; it names each with its fix, the test runs
// those fixes inside the namespace, and doctor then passes. No edge or agent
// runs here, so the daemon, edge-api and clock checks warn (skipped), which
// does not fail doctor.
func TestDoctorGateway(t *testing.T) {
	l := lab.New(t)
	gw, site := l.NS("gw"), l.NS("site")
	lan, _ := l.Link(gw, "192.0.2.1/24", site, "192.0.2.2/24")
	for k, v := range map[string]string{
		"net.ipv4.ip_forward":                 "0",
		"net.ipv4.conf.all.rp_filter":         "0",
		"net.ipv4.conf." + lan + ".rp_filter": "1",
	} {
		if err := gw.Sysctl(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := gw.Route("add", "198.51.100.0/25", "via", "192.0.2.2", "dev", lan); err != nil {
		t.Fatal(err)
	}
	// A firewall that drops what it forwards unless a rule accepts it.
	gw.MustExec(t, "nft", "add table inet fw")
	gw.MustExec(t, "nft", "add chain inet fw gate { type filter hook forward priority 0 ; policy drop ; }")
	gw.MustExec(t, "nft", "add rule inet fw gate iifname "+lan+" oifname "+lan+" accept")
	args := []string{"--state-dir", t.TempDir(), "--prefix", "198.51.100.0/24", "--token", ""}

	rep, failed := runDoctor(t, gw, args...)
	if !failed {
		t.Errorf("doctor exited 0 with failures: %+v", rep.Checks)
	}
	fwd := one(t, rep, "forwarding")
	if fwd.Status != doctor.Fail || fwd.Fix != "sysctl -w net.ipv4.ip_forward=1" {
		t.Errorf("forwarding: %+v", fwd)
	}
	conflict := one(t, rep, "route-conflict")
	if want := "ip route del 198.51.100.0/25 dev " + lan; conflict.Status != doctor.Fail || conflict.Fix != want ||
		!strings.Contains(conflict.Detail, "198.51.100.0/24") {
		t.Errorf("route-conflict: %+v, want fail naming 198.51.100.0/24 with fix %q", conflict, want)
	}
	rp := one(t, rep, "rp_filter") // the TUN does not exist: only the LAN
	if rp.Status != doctor.Warn || rp.Fix != "sysctl -w net.ipv4.conf."+lan+".rp_filter=2" {
		t.Errorf("rp_filter: %+v", rp)
	}

	var fwFixes []string
	for _, c := range rep.Find("firewall") {
		if c.Status == doctor.Fail {
			fwFixes = append(fwFixes, c.Fix)
		}
	}
	if want := []string{"nft insert rule inet fw gate iifname sy0 accept", "nft insert rule inet fw gate oifname sy0 accept"}; !slices.Equal(fwFixes, want) {
		t.Errorf("firewall fixes %q, want %q", fwFixes, want)
	}

	for _, fix := range rep.Fixes() {
		if strings.HasPrefix(fix, "systemctl") {
			continue // no agent in this lab
		}
		t.Logf("applying: %s", fix)
		gw.MustExec(t, strings.Fields(fix)...)
	}
	if v, _ := gw.ReadSysctl("net.ipv4.ip_forward"); v != "1" {
		t.Errorf("after the fix ip_forward = %q", v)
	}
	if out := gw.MustExec(t, "ip", "route", "show", "198.51.100.0/25"); strings.TrimSpace(out) != "" {
		t.Errorf("after the fix the route is still there: %s", out)
	}

	rep, failed = runDoctor(t, gw, args...)
	if failed {
		t.Errorf("doctor failed after the fixes: %+v", rep.Checks)
	}
	for _, name := range []string{"forwarding", "route-conflict", "rp_filter", "firewall"} {
		if c := one(t, rep, name); c.Status != doctor.OK {
			t.Errorf("after the fixes: %+v, want ok", c)
		}
	}
	for _, name := range []string{"daemon", "edge-api", "clock"} {
		if c := one(t, rep, name); c.Status != doctor.Warn {
			t.Errorf("without agent or edge: %+v, want warn", c)
		}
	}
}
