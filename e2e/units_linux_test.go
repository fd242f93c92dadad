//go:build linux

package e2e

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// unitPrivileges is what a packaged unit (deploy/systemd) gives its daemon.
type unitPrivileges struct {
	user           string   // User=, "" for root
	bounding       []string // CapabilityBoundingSet=, e.g. net_admin
	ambient        []string // AmbientCapabilities=
	noNewPrivilege bool
}

func readUnit(t *testing.T, name string) unitPrivileges {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "deploy", "systemd", name))
	must(t, err)
	caps := func(v string) []string {
		var out []string
		for _, c := range strings.Fields(v) {
			out = append(out, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
		}
		return out
	}
	var u unitPrivileges
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "User":
			u.user = v
		case "CapabilityBoundingSet":
			u.bounding = caps(v)
		case "AmbientCapabilities":
			u.ambient = caps(v)
		case "NoNewPrivileges":
			u.noNewPrivilege = v == "yes"
		}
	}
	if len(u.bounding) == 0 {
		t.Fatalf("%s sets no CapabilityBoundingSet", name)
	}
	return u
}

// setpriv is the command prefix that runs a daemon with u's privileges as
// uid (for a unit with User=) through util-linux's setpriv, and env, as its
// unit's EnvironmentFile would set it.
func (u unitPrivileges) setpriv(uid string, env ...string) []string {
	list := func(c []string) string {
		s := "-all"
		for _, x := range c {
			s += ",+" + x
		}
		return s
	}
	args := append([]string{"env"}, env...)
	args = append(args, "setpriv", "--bounding-set="+list(u.bounding))
	if u.user != "" {
		args = append(args, "--reuid="+uid, "--regid="+uid, "--clear-groups",
			"--inh-caps="+list(u.ambient), "--ambient-caps="+list(u.ambient))
	}
	if u.noNewPrivilege {
		args = append(args, "--no-new-privs")
	}
	return append(args, "--")
}

// TestUnitPrivileges runs the edge, a connector and a client with exactly the
// privileges their packaged units give them (the edge as an unprivileged user
// with CAP_NET_BIND_SERVICE alone, the agents as root bounded to their
// capabilities), configured only through their environment files' SWITCHYARD_*
// variables, and checks what an operator would: the laptop reaches site A's
// server, which sees the laptop's overlay address; the site reaches the
// laptop; the client's DNS stub answers on port 53. Then that each unit's
// capabilities are needed: the client without CAP_NET_BIND_SERVICE and the
// edge without its ambient capability fail to start.
func TestUnitPrivileges(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv (util-linux)")
	}
	edgeUnit, connUnit, clientUnit := readUnit(t, "switchyard-edge.service"),
		readUnit(t, "switchyard-connector.service"), readUnit(t, "switchyard-client.service")
	if edgeUnit.user == "" {
		t.Fatal("the edge's unit runs it as root")
	}
	const nobody = "65534"

	w := newWorld(t)
	// The edge's user must reach its binary and data dir.
	for d := w.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		must(t, os.Chmod(d, 0o711))
	}
	bin := filepath.Join(w.dir, "switchyard")
	copyFile(t, binary, bin)
	dataDir := filepath.Join(w.dir, "edge")
	must(t, os.Mkdir(dataDir, 0o700))
	must(t, os.Chown(dataDir, 65534, 65534))
	edgeEnv := []string{"SWITCHYARD_DATA_DIR=" + dataDir, "SWITCHYARD_API_LISTEN=" + edgeAddr + ":7443",
		"SWITCHYARD_PUBLIC_ADDR=" + edgeAddr + ":51820"} // WireGuard :51820 and MASQUE :443 by default

	t.Run("the edge needs its ambient capability for MASQUE's port 443", func(t *testing.T) {
		bare := edgeUnit
		bare.ambient = nil
		p := w.edge.Start(t, append(bare.setpriv(nobody, edgeEnv...), bin, "edge")...)
		if err := p.Wait(); err == nil || !strings.Contains(p.Output(), "permission denied") {
			t.Fatalf("the edge without CAP_NET_BIND_SERVICE: %v, want a refused bind:\n%s", err, p.Output())
		}
	})
	w.edgeProc = w.edge.Start(t, append(edgeUnit.setpriv(nobody, edgeEnv...), bin, "edge")...)
	must(t, w.edgeProc.WaitFor("edge started", 15*time.Second))
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(w.edgeProc.PID()), "status"))
	must(t, err)
	if !strings.Contains(string(status), "\nUid:\t"+nobody+"\t") || !strings.Contains(string(status), "\nCapEff:\t0000000000000400\n") {
		t.Fatalf("the edge does not run as %s with CAP_NET_BIND_SERVICE alone:\n%s", nobody, status)
	}

	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	tokA := w.tunnelToken("site-a")
	w.cli("tunnel", "route", "ip", "add", "10.1.0.0/16", "site-a")
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")

	conn := w.gwa.Start(t, append(connUnit.setpriv("", "SWITCHYARD_TUNNEL_TOKEN="+tokA,
		"SWITCHYARD_STATE_DIR="+filepath.Join(w.dir, "gwa"), "SWITCHYARD_TUN_NAME=sy0"), bin, "connector", "run")...)
	must(t, conn.WaitFor("host configured", 20*time.Second))

	var enroll model.EnrollToken
	must(t, json.Unmarshal([]byte(w.cli("device", "enroll-token", "create", "--uses", "2", "-o", "json")), &enroll))
	resolvConf := filepath.Join(w.dir, "laptop-resolv.conf")
	must(t, os.WriteFile(resolvConf, []byte("nameserver 192.0.2.53\n"), 0o644))
	clientEnv := []string{"SWITCHYARD_ENROLL_TOKEN=" + enroll.Token, "SWITCHYARD_STATE_DIR=" + filepath.Join(w.dir, "laptop"),
		"SWITCHYARD_TUN_NAME=sy1", "SWITCHYARD_NAME=laptop", "SWITCHYARD_RESOLV_CONF=" + resolvConf}

	t.Run("the client needs CAP_NET_BIND_SERVICE for its DNS stub", func(t *testing.T) {
		bare := clientUnit
		bare.bounding = []string{"net_admin"}
		p := w.laptop.Start(t, append(bare.setpriv("", clientEnv...), bin, "client", "up")...)
		if err := p.Wait(); err == nil || !strings.Contains(p.Output(), "permission denied") {
			t.Fatalf("the client without CAP_NET_BIND_SERVICE: %v, want a refused bind on port 53:\n%s", err, p.Output())
		}
	})
	client := w.laptop.Start(t, append(clientUnit.setpriv("", clientEnv...), bin, "client", "up")...)
	must(t, client.WaitFor("host configured", 20*time.Second))
	var devices []model.Device
	must(t, json.Unmarshal([]byte(w.cli("device", "list", "-o", "json")), &devices))
	laptopIP := ""
	for _, d := range devices {
		if d.Name == "laptop" && !d.Revoked() {
			laptopIP = d.IP.String()
		}
	}
	if laptopIP == "" {
		t.Fatalf("no device laptop: %+v", devices)
	}

	w.hosta.Echo(t, "10.1.2.3:7000")
	w.laptop.Echo(t, laptopIP+":7000")
	wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", laptopIP)
	wantPeer(t, w.hosta, "tcp", laptopIP+":7000", "10.1.2.3")

	rc, err := os.ReadFile(resolvConf)
	must(t, err)
	if !strings.Contains(string(rc), "nameserver 127.2.0.53") {
		t.Fatalf("the client did not point %s at its stub:\n%s", resolvConf, rc)
	}
	if _, err := resolve(w.laptop, "127.2.0.53:53", "laptop.sy.internal"); err != nil {
		t.Fatalf("the client's stub on port 53: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	must(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	must(t, err)
	_, err = io.Copy(out, in)
	must(t, err)
	must(t, out.Close())
}
