//go:build linux

package wireguard

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/switchyard/switchyard/internal/lab"
)

// TestNetnsWireguardGo runs the stock wireguard-go binary, configured with
// wg(8), in one network namespace and the endpoint's UDP socket in another,
// joined by a veth pair, and pings the endpoint through the tunnel; the
// test's receiver answers the echo requests. Nothing touches the root
// namespace, and everything is removed on cleanup.
func TestNetnsWireguardGo(t *testing.T) {
	for _, bin := range []string{"ip", "wg", "wireguard-go", "ping"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install wireguard-tools wireguard-go iproute2 iputils-ping)", bin)
		}
	}
	goroutineLeakCheck(t)
	l := lab.New(t)
	agent, edge := l.NS("agent"), l.NS("edge")
	l.Link(agent, "198.51.100.2/24", edge, "198.51.100.1/24")
	wgIf := l.Prefix() + "-wg"

	// The endpoint, its socket opened inside edge.
	r := &echoReflector{}
	agentKey := mustKey(t)
	e := newEndpointInNetns(t, edge, Config{Bind: conn.NewStdNetBind(), Receiver: r})
	r.e = e
	sess, err := e.AddPeer(PeerConfig{PublicKey: agentKey.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}

	// wireguard-go in the foreground, stopped by the lab; its control
	// socket is removed after it stops.
	t.Cleanup(func() { _ = os.Remove(filepath.Join("/var/run/wireguard", wgIf+".sock")) })
	agent.Start(t, "env", "LOG_LEVEL=error", "wireguard-go", "-f", wgIf)
	waitFor(t, 10*time.Second, "wireguard-go interface", func() bool {
		_, err := agent.Exec("wg", "show", wgIf)
		return err == nil
	})

	keyFile := filepath.Join(t.TempDir(), "agent.key")
	if err := os.WriteFile(keyFile, []byte(keyToB64(agentKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agent.MustExec(t, "wg", "set", wgIf, "private-key", keyFile,
		"peer", e.PublicKey().String(), "endpoint", "198.51.100.1:"+strconv.Itoa(int(e.Port())),
		"allowed-ips", "192.0.2.0/24")
	if err := agent.AddAddr(wgIf, "192.0.2.2/24"); err != nil {
		t.Fatal(err)
	}
	agent.MustExec(t, "ip", "link", "set", wgIf, "up")

	agent.MustExec(t, "ping", "-c", "3", "-i", "0.2", "-W", "5", "192.0.2.1")
	waitFor(t, 2*time.Second, "session counters", func() bool {
		st := sess.Stats()
		return st.RxPackets >= 3 && st.TxPackets >= 3
	})
	if got := sess.RemoteAddr().String(); !strings.HasPrefix(got, "198.51.100.2:") {
		t.Fatalf("session endpoint %s, want 198.51.100.2:*", got)
	}
	hs := agent.MustExec(t, "wg", "show", wgIf, "latest-handshakes")
	if strings.Contains(hs, "\t0\n") {
		t.Fatalf("wg reports no handshake: %q", hs)
	}
}

// newEndpointInNetns creates the endpoint on a thread inside ns, so the
// bind's sockets live there.
func newEndpointInNetns(t *testing.T, ns *lab.NS, cfg Config) *Endpoint {
	t.Helper()
	var e *Endpoint
	err := ns.Do(func() error {
		if cfg.PrivateKey.IsZero() {
			k, err := GeneratePrivateKey()
			if err != nil {
				return err
			}
			cfg.PrivateKey = k
		}
		var err error
		e, err = New(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("endpoint in netns %s: %v", ns, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func keyToB64(k PrivateKey) string { return PublicKey(k).String() }
