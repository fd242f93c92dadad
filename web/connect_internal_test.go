package web

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestConnectSystemdLines: the console's lines put the token in the file the
// packaged connector unit reads, replace a token set before, and keep the
// file's comments and mode.
func TestConnectSystemdLines(t *testing.T) {
	unit, err := os.ReadFile("../deploy/systemd/switchyard-connector.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nEnvironmentFile="+connectorUnitEnv+"\n") {
		t.Fatalf("the connector unit does not read %s:\n%s", connectorUnitEnv, unit)
	}
	if _, err := exec.LookPath("sed"); err != nil {
		t.Skip("no sed")
	}
	env := filepath.Join(t.TempDir(), "connector.env")
	const comments = "# the packaged file's comments\n#SWITCHYARD_TUN_NAME=sy0\n"
	if err := os.WriteFile(env, []byte(comments+"SWITCHYARD_TUNNEL_TOKEN=old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"first", "second"} {
		lines := strings.Split(connectView{Token: tok}.Systemd(), "\n")
		if !strings.Contains(lines[len(lines)-1], "systemctl enable --now switchyard-connector") {
			t.Fatalf("the last line %q does not start the unit", lines[len(lines)-1])
		}
		script := strings.NewReplacer("sudo ", "", connectorUnitEnv, env).Replace(strings.Join(lines[:len(lines)-1], "\n"))
		if out, err := exec.Command("sh", "-ec", script).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", script, err, out)
		}
		got, err := os.ReadFile(env)
		if err != nil {
			t.Fatal(err)
		}
		if want := comments + "SWITCHYARD_TUNNEL_TOKEN=" + tok + "\n"; string(got) != want {
			t.Fatalf("after the lines for %s the file holds\n%s\nwant\n%s", tok, got, want)
		}
	}
	if fi, err := os.Stat(env); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the file's mode: %v %v, want 0600", fi.Mode(), err)
	}
}
