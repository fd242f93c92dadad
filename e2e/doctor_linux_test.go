//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/agent/doctor"
	"github.com/switchyard/switchyard/internal/lab"
)

// doctorIn runs `switchyard doctor -o json` in ns and returns its checks
// called name.
func doctorIn(t *testing.T, ns *lab.NS, name string, args ...string) []doctor.Check {
	t.Helper()
	out, err := ns.Exec(append([]string{binary, "doctor", "-o", "json"}, args...)...)
	var rep doctor.Report
	if jerr := json.NewDecoder(bytes.NewReader([]byte(out))).Decode(&rep); jerr != nil {
		t.Fatalf("doctor %s: %v: %v\n%s", strings.Join(args, " "), jerr, err, out)
	}
	return rep.Find(name)
}

// wantCheck fails unless doctor's checks called name are exactly one, with
// status want and a detail containing detail.
func wantCheck(t *testing.T, cs []doctor.Check, what string, want doctor.Status, detail string) doctor.Check {
	t.Helper()
	if len(cs) != 1 || cs[0].Status != want || !strings.Contains(cs[0].Detail, detail) {
		t.Fatalf("%s: %+v, want one %s check about %q", what, cs, want, detail)
	}
	return cs[0]
}

// TestDoctorAgainstEdge runs doctor on a gateway and a laptop against a real
// edge: the edge accepts the tunnel token; before the connector first starts
// the handshake is skipped; beside the running connector doctor takes the
// agent's word; with it stopped, doctor completes a handshake with its key;
// a firewall that drops UDP to the WireGuard port fails with its fix; a
// client is checked with the credential it saved; a deleted tunnel's token
// fails with the command that prints its token.
func TestDoctorAgainstEdge(t *testing.T) {
	w := newWorld(t)
	w.startEdge()
	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	tok := w.tunnelToken("site-a")
	w.cli("tunnel", "route", "ip", "add", "10.1.0.0/16", "site-a")
	gwa := []string{"--role", "connector", "--state-dir", filepath.Join(w.dir, "gwa"), "--tun-name", "sy0", "--token", tok}

	wantCheck(t, doctorIn(t, w.gwa, "token", gwa...), "a new tunnel's token", doctor.OK, "accepts it")
	wantCheck(t, doctorIn(t, w.gwa, "wireguard", gwa...), "before the connector started", doctor.Warn, "no WireGuard key")

	conn := w.startConnector(w.gwa, "gwa", tok)
	must(t, conn.WaitFor("edge answers heartbeats", 10*time.Second))
	wantCheck(t, doctorIn(t, w.gwa, "daemon", gwa...), "the running connector", doctor.OK, "healthy")
	wantCheck(t, doctorIn(t, w.gwa, "wireguard", gwa...), "the running connector", doctor.OK, "running agent")
	must(t, conn.Stop())
	wantCheck(t, doctorIn(t, w.gwa, "wireguard", gwa...), "the stopped connector", doctor.OK, "completed a handshake")

	w.gwa.MustExec(t, "nft", "add table inet blockwg; add chain inet blockwg out { type filter hook output priority 0; }; "+
		"add rule inet blockwg out udp dport 51820 drop")
	c := wantCheck(t, doctorIn(t, w.gwa, "wireguard", gwa...), "UDP to 51820 dropped", doctor.Fail, "port 51820")
	if !strings.Contains(c.Fix, "udp dport 51820 accept") {
		t.Errorf("fix %q, want one that accepts UDP to 51820", c.Fix)
	}
	w.gwa.MustExec(t, "nft", "delete", "table", "inet", "blockwg")

	laptop, _ := w.startClient(w.laptop, "laptop")
	must(t, laptop.WaitFor("edge answers heartbeats", 10*time.Second))
	laptopArgs := []string{"--role", "client", "--state-dir", filepath.Join(w.dir, "laptop"), "--tun-name", "sy1"}
	wantCheck(t, doctorIn(t, w.laptop, "token", laptopArgs...), "the client's saved credential", doctor.OK, `device "laptop"`)
	wantCheck(t, doctorIn(t, w.laptop, "wireguard", laptopArgs...), "the running client", doctor.OK, "running agent")
	must(t, laptop.Stop())

	var tunnels []struct{ ID, Name string }
	must(t, json.Unmarshal([]byte(w.cli("tunnel", "list", "-o", "json")), &tunnels))
	w.cli("tunnel", "delete", "--force", "site-a")
	c = wantCheck(t, doctorIn(t, w.gwa, "token", gwa...), "a deleted tunnel's token", doctor.Fail, "refuses it")
	if len(tunnels) != 1 || c.Fix != "switchyard tunnel token "+tunnels[0].ID {
		t.Errorf("fix %q, want the command that prints the token of %+v", c.Fix, tunnels)
	}
}
