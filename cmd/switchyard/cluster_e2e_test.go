package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/token"
	"github.com/switchyard/switchyard/internal/etcdtest"
)

// clusterEdge starts an edge named name on the etcd at endpoints, with the
// cluster key in keyFile and its own data dir, without waiting for it.
func launchClusterEdge(t *testing.T, endpoints []string, keyFile, name string) (*edgeProc, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	e := launchEdge(t, dir, "--store", "etcd://"+strings.Join(endpoints, ","), "--cluster-key", keyFile, "--edge-name", name)
	return e, dir
}

// newClusterKey writes a cluster key with the CLI and returns its path.
func newClusterKey(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.key")
	if out, err := exec.Command(binary, "edge", "cluster-key", "create", path).CombinedOutput(); err != nil {
		t.Fatalf("cluster-key create: %v\n%s", err, out)
	}
	return path
}

// adminToken reads the token, API URL and CA from an edge's admin.json.
func adminToken(t *testing.T, dir string) (token, api, ca string) {
	t.Helper()
	var cfg struct{ API, Token, CA string }
	buf, err := os.ReadFile(filepath.Join(dir, "admin.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Token, cfg.API, cfg.CA
}

// eventually retries fn for up to d, returning its last error.
func eventually(d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exitStatus returns the exit status of a CLI run, or -1.
func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// waitEdges waits until `edge list` through dir shows want (name → healthy).
func waitEdges(t *testing.T, dir string, within time.Duration, want map[string]bool) {
	t.Helper()
	var edges []model.Edge
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		edges = jsonCLI[[]model.Edge](t, dir, "edge list")
		got := map[string]bool{}
		for _, e := range edges {
			got[e.Name] = e.Healthy
		}
		ok := len(got) == len(want)
		for n, h := range want {
			if g, found := got[n]; !found || g != h {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge list = %+v after %s, want %v", edges, within, want)
		}
	}
}

// TestClusterOfTwoEdges runs two edges on one etcd: started at the same moment
// on an empty etcd they share one CA and one admin token, the virtual networks
// transcript spread over both agrees, the registry's rules hold across them
// under a race, a SIGKILLed edge's acknowledged write is in etcd, and an etcd
// restart under a running edge needs no edge restart.
func TestClusterOfTwoEdges(t *testing.T) {
	etcd := etcdtest.StartCluster(t, 1)
	key := newClusterKey(t)
	ea, da := launchClusterEdge(t, etcd.Endpoints(), key, "edge-a")
	eb, db := launchClusterEdge(t, etcd.Endpoints(), key, "edge-b")
	ea.wait(t)
	eb.wait(t)

	// One admin token, printed once, in both admin.json files with each
	// edge's own API address; one CA.
	printed := 0
	for _, e := range []*edgeProc{ea, eb} {
		if e.out.waitFor("Admin token (shown once") { // stdout may lag the log line on stderr
			printed++
		}
	}
	if printed != 1 {
		t.Errorf("%d edges printed a new admin token, want 1", printed)
	}
	ta, apiA, caA := adminToken(t, da)
	tb, apiB, caB := adminToken(t, db)
	if ta != tb || ta == "" {
		t.Fatalf("admin tokens differ: %q and %q", ta, tb)
	}
	if apiA != ea.api || apiB != eb.api || apiA == apiB {
		t.Fatalf("admin.json APIs %s, %s; want each edge's own (%s, %s)", apiA, apiB, ea.api, eb.api)
	}
	if caA == "" || caA != caB {
		t.Fatalf("the edges' CAs differ or are missing (%d and %d bytes)", len(caA), len(caB))
	}
	waitEdges(t, da, 5*time.Second, map[string]bool{"edge-a": true, "edge-b": true})
	if edges := jsonCLI[[]model.Edge](t, db, "edge list"); len(edges) != 2 || edges[0].PublicKey == "" || edges[0].PublicKey == edges[1].PublicKey {
		t.Fatalf("edge list = %+v; want two edges, each with its own WireGuard key", edges)
	}

	// The announcement's transcript, one command here, the next there.
	mustCLI(t, da, "tunnel", "vnet", "add", "--default", "vnet-frankfurt")
	mustCLI(t, db, "tunnel", "vnet", "add", "vnet-sydney")
	mustCLI(t, da, "tunnel", "create", "tunnel-fra")
	syd := jsonCLI[model.CreatedTunnel](t, da, "tunnel create", "tunnel-syd")
	tok, err := token.DecodeTunnel(syd.Token)
	if err != nil || tok.API != ea.api || strings.Join(tok.APIs, " ") != eb.api {
		t.Fatalf("a tunnel token made by edge-a names %s and %q (%v); want edge-a's API, then edge-b's", tok.API, tok.APIs, err)
	}
	mustCLI(t, db, "tunnel", "route", "ip", "add", "10.1.0.0/16", "tunnel-fra")
	mustCLI(t, da, "tunnel", "route", "ip", "add", "--vnet", "vnet-sydney", "10.1.0.0/16", "tunnel-syd")
	_, errOut, err := run(t, db, "tunnel", "route", "ip", "add", "--vnet", "vnet-frankfurt", "10.1.0.0/16", "tunnel-fra")
	if err == nil || !strings.Contains(errOut, "code: 1014") {
		t.Fatalf("duplicate route through edge-b: err %v, stderr %q; want code 1014", err, errOut)
	}
	for _, dir := range []string{da, db} {
		fra := jsonCLI[model.Route](t, dir, "tunnel route ip get", "10.1.2.3")
		syd := jsonCLI[model.Route](t, dir, "tunnel route ip get", "--vnet", "vnet-sydney", "10.1.2.3")
		if fra.TunnelName != "tunnel-fra" || syd.TunnelName != "tunnel-syd" {
			t.Fatalf("route ip get through %s: %s and %s, want tunnel-fra and tunnel-syd", dir, fra.TunnelName, syd.TunnelName)
		}
		overlaps := jsonCLI[[]model.Overlap](t, dir, "tunnel route ip overlaps")
		if len(overlaps) != 1 || overlaps[0].Network.String() != "10.1.0.0/16" || len(overlaps[0].Routes) != 2 {
			t.Fatalf("overlaps through %s = %+v, want 10.1.0.0/16 in two vnets", dir, overlaps)
		}
	}
	if _, errOut, err := run(t, da, "tunnel", "vnet", "add", "vnet-sydney"); err == nil || !strings.Contains(errOut, "vnet-sydney") {
		t.Fatalf("a second vnet-sydney through edge-a: err %v, stderr %q", err, errOut)
	}

	// Twenty concurrent adds of one CIDR in one vnet, spread over both
	// edges: exactly one wins, nineteen get 1014.
	var (
		mu        sync.Mutex
		wins, dup int
		others    []string
		wg        sync.WaitGroup
	)
	for i := range 20 {
		dir := []string{da, db}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errOut, err := run(t, dir, "tunnel", "route", "ip", "add", "10.9.0.0/16", "tunnel-fra")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case strings.Contains(errOut, "code: 1014"):
				dup++
			default:
				others = append(others, errOut)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || dup != 19 {
		t.Fatalf("20 concurrent adds: %d succeeded, %d got 1014, others %q; want 1 and 19", wins, dup, others)
	}

	// SIGKILL edge-a right after it acknowledged a write: the write is in
	// etcd, edge-b serves it, and edge-a shows as down once its lease ends.
	mustCLI(t, da, "tunnel", "route", "ip", "add", "--vnet", "vnet-sydney", "192.0.2.0/24", "tunnel-syd")
	if err := ea.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ea.cmd.Wait()
	if r := jsonCLI[model.Route](t, db, "tunnel route ip get", "--vnet", "vnet-sydney", "192.0.2.7"); r.TunnelName != "tunnel-syd" {
		t.Fatalf("after edge-a's SIGKILL edge-b routes 192.0.2.7 to %q, want tunnel-syd", r.TunnelName)
	}
	mustCLI(t, db, "tunnel", "route", "ip", "add", "--vnet", "vnet-sydney", "198.51.100.0/24", "tunnel-syd")
	waitEdges(t, db, 10*time.Second, map[string]bool{"edge-a": false, "edge-b": true})

	// The token names the cluster: with edge-a dead its connector enrolls
	// through edge-b.
	agent, _, err := client.NewConnector(syd.Token)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub := make([]byte, 32)
	rand.Read(pub)
	enrolled, err := agent.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: base64.StdEncoding.EncodeToString(pub), Hostname: "gw-syd", Version: "test"})
	if err != nil || enrolled.Config.TunnelName != "tunnel-syd" {
		t.Fatalf("enrolling with a token from the dead edge-a: %+v, %v; want enrolled through edge-b", enrolled.Config, err)
	}

	// etcd stopped under edge-b: writes fail fast with 503 (exit 6) naming
	// etcd, and change nothing; etcd back: edge-b serves again by itself.
	etcd.Stop(0)
	start := time.Now()
	_, errOut, err = run(t, db, "tunnel", "route", "ip", "add", "--vnet", "vnet-sydney", "203.0.113.0/24", "tunnel-syd")
	if took := time.Since(start); exitStatus(err) != 6 || !strings.Contains(errOut, "etcd") || !strings.Contains(errOut, "1006") {
		t.Fatalf("a write with etcd down: exit %d after %s, stderr %q; want exit 6 naming etcd and code 1006", exitStatus(err), took, errOut)
	} else if took > 15*time.Second {
		t.Errorf("a write with etcd down took %s to fail", took)
	}
	etcd.Restart(0)
	if err := eventually(10*time.Second, func() error {
		_, errOut, err := run(t, db, "tunnel", "route", "ip", "show")
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	}); err != nil {
		t.Fatalf("edge-b after etcd came back: %v", err)
	}
	routes := jsonCLI[[]model.Route](t, db, "tunnel route ip show")
	for _, r := range routes {
		if r.Network.String() == "203.0.113.0/24" {
			t.Fatalf("the write refused while etcd was down is in the store: %+v", r)
		}
	}
	if len(routes) != 5 {
		t.Fatalf("after etcd's restart: %d routes, want 5: %+v", len(routes), routes)
	}
	mustCLI(t, db, "tunnel", "route", "ip", "add", "--vnet", "vnet-sydney", "203.0.113.0/24", "tunnel-syd")
	waitEdges(t, db, 10*time.Second, map[string]bool{"edge-a": false, "edge-b": true})

	// A dump of etcd reveals no secret: no admin token, no private key.
	dump := etcdDump(t, etcd.Endpoints())
	for _, secret := range []string{ta, "PRIVATE KEY"} {
		if bytes.Contains(dump, []byte(secret)) {
			t.Errorf("etcd holds %q in the clear", secret)
		}
	}

	if err := eb.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := eb.cmd.Wait(); err != nil {
		t.Fatalf("edge-b exit after SIGTERM: %v\n%s", err, eb.log)
	}
}

// etcdDump returns every key and value in etcd, concatenated.
func etcdDump(t *testing.T, endpoints []string) []byte {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		t.Fatal("etcd is empty")
	}
	var out []byte
	for _, kv := range resp.Kvs {
		out = append(append(out, kv.Key...), kv.Value...)
	}
	return out
}

// TestClusterWrongKey refuses to start an edge whose cluster key does not
// open the cluster's secrets, saying so.
func TestClusterWrongKey(t *testing.T) {
	etcd := etcdtest.StartCluster(t, 1)
	e, _ := launchClusterEdge(t, etcd.Endpoints(), newClusterKey(t), "edge-a")
	e.wait(t)
	dir := filepath.Join(t.TempDir(), "edge-b")
	cmd := exec.Command(binary, "edge", "--data-dir", dir, "--api-listen", "127.0.0.1:0", "--wg-listen", ":0", "--masque-listen", "127.0.0.1:0",
		"--store", "etcd://"+strings.Join(etcd.Endpoints(), ","), "--cluster-key", newClusterKey(t), "--edge-name", "edge-b")
	out, err := runBounded(t, cmd, 15*time.Second)
	if err == nil || !strings.Contains(out, "cluster key") {
		t.Fatalf("wrong cluster key: err %v, output %q; want a refusal naming the cluster key", err, out)
	}
}

// TestClusterEtcdFaults runs an edge on a three-member etcd: with one member
// down it serves reads and writes; without quorum writes fail fast with 503
// and change nothing, and reads fail clearly; with the members back it serves
// again, with no restart.
func TestClusterEtcdFaults(t *testing.T) {
	etcd := etcdtest.StartCluster(t, 3)
	e, dir := launchClusterEdge(t, etcd.Endpoints(), newClusterKey(t), "edge-a")
	e.wait(t)
	mustCLI(t, dir, "tunnel", "create", "t1")

	etcd.Stop(0)
	if err := eventually(5*time.Second, func() error {
		_, errOut, err := run(t, dir, "tunnel", "route", "ip", "add", "10.1.0.0/16", "t1")
		if err != nil && !strings.Contains(errOut, "1014") {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	}); err != nil {
		t.Fatalf("a write with one of three members down: %v", err)
	}
	if r := jsonCLI[model.Route](t, dir, "tunnel route ip get", "10.1.2.3"); r.TunnelName != "t1" {
		t.Fatalf("a read with one member down: %+v", r)
	}

	etcd.Stop(1)
	for _, args := range [][]string{
		{"tunnel", "route", "ip", "add", "10.2.0.0/16", "t1"},
		{"tunnel", "route", "ip", "show"},
	} {
		start := time.Now()
		_, errOut, err := run(t, dir, args...)
		took := time.Since(start)
		if exitStatus(err) != 6 || !strings.Contains(errOut, "etcd") {
			t.Fatalf("switchyard %s without quorum: exit %d after %s, stderr %q; want exit 6 naming etcd", strings.Join(args, " "), exitStatus(err), took, errOut)
		}
		if took > 10*time.Second {
			t.Errorf("switchyard %s without quorum took %s to fail", strings.Join(args, " "), took)
		}
	}

	etcd.RestartAll()
	if err := eventually(10*time.Second, func() error {
		_, errOut, err := run(t, dir, "tunnel", "route", "ip", "add", "10.3.0.0/16", "t1")
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	}); err != nil {
		t.Fatalf("a write after quorum came back: %v", err)
	}
	var nets []string
	for _, r := range jsonCLI[[]model.Route](t, dir, "tunnel route ip show") {
		nets = append(nets, r.Network.String())
	}
	if strings.Join(nets, " ") != "10.1.0.0/16 10.3.0.0/16" {
		t.Fatalf("routes after the faults: %v, want 10.1.0.0/16 and 10.3.0.0/16 (the write without quorum changed nothing)", nets)
	}
}

// TestClusterOverTLS runs an edge on an etcd that serves clients over TLS
// only and requires a client certificate; without one the edge refuses to
// start, naming etcd.
func TestClusterOverTLS(t *testing.T) {
	etcd, files := etcdtest.StartTLS(t)
	hostPort := strings.TrimPrefix(etcd.Endpoints()[0], "https://")
	key := newClusterKey(t)
	dir := filepath.Join(t.TempDir(), "edge-a")
	startEdge(t, dir, "--store", "etcd://"+hostPort, "--cluster-key", key, "--edge-name", "edge-a",
		"--etcd-ca", files.CA, "--etcd-cert", files.Cert, "--etcd-key", files.Key)
	mustCLI(t, dir, "tunnel", "create", "t1")
	waitEdges(t, dir, 5*time.Second, map[string]bool{"edge-a": true})

	cmd := exec.Command(binary, "edge", "--data-dir", filepath.Join(t.TempDir(), "edge-b"), "--api-listen", "127.0.0.1:0", "--wg-listen", ":0", "--masque-listen", "127.0.0.1:0",
		"--store", "etcd://"+hostPort, "--cluster-key", key, "--edge-name", "edge-b", "--etcd-ca", files.CA)
	out, err := runBounded(t, cmd, 20*time.Second)
	if err == nil || !strings.Contains(out, "--etcd-cert") {
		t.Fatalf("an edge without a client certificate: err %v, output %q; want a refusal naming etcd", err, out)
	}
}

// runBounded runs cmd to its end, killing it after d.
func runBounded(t *testing.T, cmd *exec.Cmd, d time.Duration) (string, error) {
	t.Helper()
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s still running after %s:\n%s", strings.Join(cmd.Args, " "), d, buf.String())
		return "", nil
	}
}
