package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/testbin"
)

// binary is the switchyard binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m.Run, &binary, false)) }

// edgeProc is a running `switchyard edge`.
type edgeProc struct {
	cmd *exec.Cmd
	api string
	out *syncBuffer
	log *syncBuffer // stderr

	apiCh chan string // the API URL, once the edge serves
}

// syncBuffer is a bytes.Buffer that exec's copier and the test may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor reports whether s appears in the buffer within two seconds.
func (b *syncBuffer) waitFor(s string) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(b.String(), s) {
			return true
		}
	}
	return false
}

// startEdge runs the edge on a free loopback port, with extra flags, and
// waits until it serves.
func startEdge(t *testing.T, dataDir string, extra ...string) *edgeProc {
	t.Helper()
	e := launchEdge(t, dataDir, extra...)
	e.wait(t)
	return e
}

// launchEdge starts the edge without waiting for it; wait does.
func launchEdge(t *testing.T, dataDir string, extra ...string) *edgeProc {
	t.Helper()
	args := []string{"edge", "--data-dir", dataDir, "--api-listen", "127.0.0.1:0", "--wg-listen", ":0", "--masque-listen", "127.0.0.1:0", "--public-addr", "127.0.0.1:51820"}
	cmd := exec.Command(binary, append(args, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	e := &edgeProc{cmd: cmd, out: &syncBuffer{}, log: &syncBuffer{}, apiCh: make(chan string, 1)}
	cmd.Stdout = e.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cmd.Process.Kill(); e.cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(e.log, line)
			if _, rest, ok := strings.Cut(line, " api="); ok {
				select {
				case e.apiCh <- strings.Fields(rest)[0]:
				default:
				}
			}
		}
	}()
	return e
}

// wait waits until the edge serves its API.
func (e *edgeProc) wait(t *testing.T) {
	t.Helper()
	select {
	case e.api = <-e.apiCh:
	case <-time.After(10 * time.Second):
		t.Fatalf("edge did not start within 10s\nstdout: %s\nstderr: %s", e.out, e.log)
	}
}

// run runs the CLI against the edge whose admin config is in dataDir.
func run(t *testing.T, dataDir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "SWITCHYARD_CONFIG="+filepath.Join(dataDir, "admin.json"))
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func mustCLI(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, dataDir, args...)
	if err != nil {
		t.Fatalf("switchyard %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// jsonCLI runs a command with -o json after its words (those without a space
// in cmd) and before its arguments, and decodes the output.
func jsonCLI[T any](t *testing.T, dataDir string, cmd string, args ...string) T {
	t.Helper()
	var v T
	full := append(strings.Fields(cmd), "-o", "json")
	out := mustCLI(t, dataDir, append(full, args...)...)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("switchyard %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// TestVirtualNetworksAnnouncement walks the scenario of the virtual networks
// announcement through the real binary: two vnets, one CIDR routed in each.
func TestVirtualNetworksAnnouncement(t *testing.T) {
	dir := t.TempDir()
	edge := startEdge(t, dir)
	if !edge.out.waitFor("Admin token (shown once") {
		t.Errorf("first start did not print the admin token; stdout: %q", edge.out.String())
	}
	if fi, err := os.Stat(filepath.Join(dir, "admin.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin config: %v, mode %v; want 0600", err, fi.Mode())
	}

	mustCLI(t, dir, "tunnel", "vnet", "add", "--default", "vnet-frankfurt", "Frankfurt data center")
	mustCLI(t, dir, "tunnel", "vnet", "add", "vnet-sydney")
	defs := jsonCLI[[]model.VNet](t, dir, "tunnel vnet list", "--is-default")
	if len(defs) != 1 || defs[0].Name != "vnet-frankfurt" {
		t.Fatalf("default vnets = %+v, want vnet-frankfurt alone", defs)
	}
	out := mustCLI(t, dir, "tunnel", "create", "tunnel-fra")
	if !strings.Contains(out, "Created tunnel tunnel-fra with id") {
		t.Fatalf("tunnel create printed %q", out)
	}
	syd := jsonCLI[model.CreatedTunnel](t, dir, "tunnel create", "tunnel-syd")
	if tok := strings.TrimSpace(mustCLI(t, dir, "tunnel", "token", syd.Tunnel.ID.String())); tok != syd.Token {
		t.Fatalf("tunnel token by id = %q, want the token create printed", tok)
	}

	mustCLI(t, dir, "tunnel", "route", "ip", "add", "10.1.0.0/16", "tunnel-fra", "Frankfurt LAN")
	mustCLI(t, dir, "tunnel", "route", "ip", "add", "--vnet", "vnet-sydney", "10.1.0.0/16", "tunnel-syd")
	_, errOut, err := run(t, dir, "tunnel", "route", "ip", "add", "--vnet", "vnet-frankfurt", "10.1.0.0/16", "tunnel-fra")
	if err == nil || !strings.Contains(errOut, "code: 1014, reason: You already have a route defined for this exact IP subnet") {
		t.Fatalf("duplicate route: err %v, stderr %q; want code 1014", err, errOut)
	}
	_, errOut, err = run(t, dir, "tunnel", "route", "ip", "add", "10.1.2.3/16", "tunnel-fra")
	if err == nil || !strings.Contains(errOut, "10.1.0.0/16") {
		t.Fatalf("non-canonical CIDR: err %v, stderr %q; want a message naming 10.1.0.0/16", err, errOut)
	}

	fra := jsonCLI[model.Route](t, dir, "tunnel route ip get", "10.1.2.3")
	if fra.TunnelName != "tunnel-fra" || fra.VNetName != "vnet-frankfurt" {
		t.Fatalf("route ip get 10.1.2.3 = %+v, want tunnel-fra in vnet-frankfurt", fra)
	}
	sydRoute := jsonCLI[model.Route](t, dir, "tunnel route ip get", "--vnet", "vnet-sydney", "10.1.2.3")
	if sydRoute.TunnelName != "tunnel-syd" || sydRoute.VNetName != "vnet-sydney" {
		t.Fatalf("route ip get --vnet vnet-sydney 10.1.2.3 = %+v, want tunnel-syd", sydRoute)
	}
	_, errOut, err = run(t, dir, "tunnel", "route", "ip", "get", "10.200.0.1")
	if err == nil || !strings.Contains(errOut, "No route matches the IP 10.200.0.1") {
		t.Fatalf("unrouted IP: err %v, stderr %q", err, errOut)
	}

	overlaps := jsonCLI[[]model.Overlap](t, dir, "tunnel route ip overlaps")
	if len(overlaps) != 1 || overlaps[0].Network.String() != "10.1.0.0/16" || len(overlaps[0].Routes) != 2 {
		t.Fatalf("overlaps = %+v, want 10.1.0.0/16 in two vnets", overlaps)
	}
	table := mustCLI(t, dir, "tunnel", "route", "ip", "overlaps")
	for _, want := range []string{"vnet-frankfurt", "vnet-sydney", "tunnel-fra", "tunnel-syd"} {
		if !strings.Contains(table, want) {
			t.Errorf("overlaps table does not name %s:\n%s", want, table)
		}
	}
	yaml := mustCLI(t, dir, "tunnel", "route", "ip", "show", "--vnet", "vnet-sydney", "-o", "yaml")
	if !strings.Contains(yaml, "network: 10.1.0.0/16") || strings.Contains(yaml, "vnet-frankfurt") {
		t.Fatalf("route ip show --vnet vnet-sydney -o yaml:\n%s", yaml)
	}

	_, errOut, err = run(t, dir, "tunnel", "vnet", "delete", "vnet-sydney")
	if err == nil || !strings.Contains(errOut, "route") {
		t.Fatalf("deleting a vnet with routes: err %v, stderr %q", err, errOut)
	}
	mustCLI(t, dir, "tunnel", "vnet", "delete", "--force", "vnet-sydney")
	if got := jsonCLI[[]model.Route](t, dir, "tunnel route ip show"); len(got) != 1 {
		t.Fatalf("routes after vnet delete --force: %+v, want the Frankfurt one", got)
	}
	_, errOut, err = run(t, dir, "tunnel", "vnet", "delete", "vnet-frankfurt")
	if err == nil || !strings.Contains(errOut, "default") {
		t.Fatalf("deleting the default vnet: err %v, stderr %q", err, errOut)
	}

	// SIGTERM is a clean stop.
	if err := edge.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := edge.cmd.Wait(); err != nil {
		t.Fatalf("edge exit after SIGTERM: %v", err)
	}
}

// TestExplicitCredentials reaches the API from flags and the environment, not
// the config file, and is refused with a wrong token.
func TestExplicitCredentials(t *testing.T) {
	dir := t.TempDir()
	edge := startEdge(t, dir)
	var cfg struct{ Token string }
	buf, _ := os.ReadFile(filepath.Join(dir, "admin.json"))
	json.Unmarshal(buf, &cfg)
	ca := filepath.Join(dir, "ca.crt")
	runEnv := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), append(env, "SWITCHYARD_CONFIG=")...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := runEnv(nil, "--api", edge.api, "--token", cfg.Token, "--ca", ca, "tunnel", "vnet", "list"); err != nil || !strings.Contains(out, "default") {
		t.Fatalf("with flags: %v\n%s", err, out)
	}
	env := []string{"SWITCHYARD_API=" + edge.api, "SWITCHYARD_TOKEN=" + cfg.Token, "SWITCHYARD_CA=" + ca}
	if out, err := runEnv(env, "tunnel", "list"); err != nil || !strings.Contains(out, "NAME") {
		t.Fatalf("with environment: %v\n%s", err, out)
	}
	out, err := runEnv(nil, "--api", edge.api, "--token", "wrong", "--ca", ca, "tunnel", "list")
	if err == nil || !strings.Contains(out, "invalid token") {
		t.Fatalf("with a wrong token: %v\n%s", err, out)
	}
	if out, err := runEnv(nil, "--api", edge.api, "--token", cfg.Token, "tunnel", "list"); err == nil {
		t.Fatalf("without the CA the edge's certificate was trusted:\n%s", out)
	}
}

// TestKilledEdgeKeepsAcknowledgedWrites kills the edge with SIGKILL right after
// a write is acknowledged; after a restart the write is there.
func TestKilledEdgeKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	edge := startEdge(t, dir)
	mustCLI(t, dir, "tunnel", "create", "t1")
	for i := 0; i < 5; i++ {
		mustCLI(t, dir, "tunnel", "route", "ip", "add", fmt.Sprintf("192.0.2.%d/32", i), "t1")
	}
	if err := edge.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	edge.cmd.Wait()

	edge = startEdge(t, dir)
	if strings.Contains(edge.out.String(), "Admin token") {
		t.Error("a restart printed a new admin token")
	}
	routes := jsonCLI[[]model.Route](t, dir, "tunnel route ip show")
	if len(routes) != 5 {
		t.Fatalf("after SIGKILL and restart: %d routes, want 5", len(routes))
	}
}
