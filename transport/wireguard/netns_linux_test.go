//go:build linux

package wireguard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// TestNetnsWireguardGo runs the stock wireguard-go binary, configured with
// wg(8), in one network namespace and the endpoint's UDP socket in another,
// joined by a veth pair, and pings the endpoint through the tunnel; the
// test's receiver answers the echo requests. Nothing touches the root
// namespace, and everything is removed on cleanup.
func TestNetnsWireguardGo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, bin := range []string{"ip", "wg", "wireguard-go", "ping"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install wireguard-tools wireguard-go iproute2 iputils-ping)", bin)
		}
	}
	goroutineLeakCheck(t)
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(rnd[:])
	nsAgent, nsEdge := "sywg-a-"+id, "sywg-e-"+id
	vethA, vethE, wgIf := "sya"+id, "sye"+id, "sywg"+id

	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, ns := range []string{nsAgent, nsEdge} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	// The veth pair goes straight between the two namespaces.
	run("ip", "link", "add", vethA, "netns", nsAgent, "type", "veth", "peer", "name", vethE, "netns", nsEdge)
	run("ip", "-n", nsAgent, "addr", "add", "198.51.100.2/24", "dev", vethA)
	run("ip", "-n", nsEdge, "addr", "add", "198.51.100.1/24", "dev", vethE)
	for _, l := range [][2]string{{nsAgent, vethA}, {nsEdge, vethE}, {nsAgent, "lo"}, {nsEdge, "lo"}} {
		run("ip", "-n", l[0], "link", "set", l[1], "up")
	}

	// The endpoint, its socket opened inside nsEdge.
	r := &echoReflector{}
	agentKey := mustKey(t)
	e := newEndpointInNetns(t, nsEdge, Config{Bind: conn.NewStdNetBind(), Receiver: r})
	r.e = e
	sess, err := e.AddPeer(PeerConfig{PublicKey: agentKey.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}

	// wireguard-go in the foreground, killed by PID on cleanup.
	cmd := exec.Command("ip", "netns", "exec", nsAgent, "wireguard-go", "-f", wgIf)
	cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start wireguard-go: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = os.Remove(filepath.Join("/var/run/wireguard", wgIf+".sock"))
		if t.Failed() {
			t.Logf("wireguard-go output:\n%s", out.String())
		}
	})
	waitFor(t, 10*time.Second, "wireguard-go interface", func() bool {
		return exec.Command("ip", "netns", "exec", nsAgent, "wg", "show", wgIf).Run() == nil
	})

	keyFile := filepath.Join(t.TempDir(), "agent.key")
	if err := os.WriteFile(keyFile, []byte(keyToB64(agentKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run("ip", "netns", "exec", nsAgent, "wg", "set", wgIf, "private-key", keyFile,
		"peer", e.PublicKey().String(), "endpoint", "198.51.100.1:"+strconv.Itoa(int(e.Port())),
		"allowed-ips", "192.0.2.0/24")
	run("ip", "-n", nsAgent, "addr", "add", "192.0.2.2/24", "dev", wgIf)
	run("ip", "-n", nsAgent, "link", "set", wgIf, "up")

	run("ip", "netns", "exec", nsAgent, "ping", "-c", "3", "-i", "0.2", "-W", "5", "192.0.2.1")
	waitFor(t, 2*time.Second, "session counters", func() bool {
		st := sess.Stats()
		return st.RxPackets >= 3 && st.TxPackets >= 3
	})
	if got := sess.RemoteAddr().String(); !strings.HasPrefix(got, "198.51.100.2:") {
		t.Fatalf("session endpoint %s, want 198.51.100.2:*", got)
	}
	hs := run("ip", "netns", "exec", nsAgent, "wg", "show", wgIf, "latest-handshakes")
	if strings.Contains(hs, "\t0\n") {
		t.Fatalf("wg reports no handshake: %q", hs)
	}
}

// newEndpointInNetns creates the endpoint from a goroutine whose thread
// has entered ns, so the bind's sockets live there. The thread is never
// unlocked, so the runtime discards it instead of reusing it.
func newEndpointInNetns(t *testing.T, ns string, cfg Config) *Endpoint {
	t.Helper()
	type result struct {
		e   *Endpoint
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: errors.Join(errors.New("setns "+ns), err)}
			return
		}
		if cfg.PrivateKey.IsZero() {
			cfg.PrivateKey, err = GeneratePrivateKey()
			if err != nil {
				ch <- result{err: err}
				return
			}
		}
		e, err := New(cfg)
		ch <- result{e, err}
	}()
	res := <-ch
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Cleanup(func() { res.e.Close() })
	return res.e
}

func keyToB64(k PrivateKey) string { return PublicKey(k).String() }
