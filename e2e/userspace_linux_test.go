//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// TestUserspaceClient runs `switchyard client up --userspace` as the
// unprivileged user nobody in a laptop namespace where it creates no TUN:
// curl through its SOCKS5 proxy reaches site A's web server, which sees the
// device's overlay address; site A's host connects to the --expose'd port
// and reaches the laptop's local server.
func TestUserspaceClient(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	w := newWorld(t)
	w.startEdge()
	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	tokA := w.tunnelToken("site-a")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.1.0.0/16", "site-a")
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")
	w.startConnector(w.gwa, "gwa", tokA)

	// Site A's web server answers with the address it sees.
	ln, err := w.hosta.Listen("tcp", "10.1.2.3:8000")
	must(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(rw, r.RemoteAddr)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	// The laptop's own server, for --expose.
	w.laptop.Echo(t, "127.0.0.1:9000")

	// nobody needs a binary and a state dir it can reach: the test's
	// temporary directories are 0700.
	dir, err := os.MkdirTemp("", "switchyard-userspace-")
	must(t, err)
	defer os.RemoveAll(dir)
	must(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "switchyard")
	if out, err := exec.Command("cp", binary, bin).CombinedOutput(); err != nil {
		t.Fatalf("copy the binary: %v %s", err, out)
	}
	state := filepath.Join(dir, "state")
	must(t, os.Mkdir(state, 0o700))
	must(t, os.Chown(state, 65534, 65534))

	var enroll model.EnrollToken
	must(t, json.Unmarshal([]byte(w.cli("device", "enroll-token", "create", "-o", "json")), &enroll))
	client := w.laptop.Start(t, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
		"env", "GORACE=atexit_sleep_ms=0", bin, "client", "up", "--userspace", "--token", enroll.Token, "--state-dir", state,
		"--name", "laptop", "--socks5", "127.0.0.1:1080", "--expose", "7000:127.0.0.1:9000")
	if err := client.WaitFor("host configured", 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, client.Output())
	}
	var devices []model.Device
	must(t, json.Unmarshal([]byte(w.cli("device", "list", "-o", "json")), &devices))
	if len(devices) != 1 {
		t.Fatalf("devices: %+v", devices)
	}
	laptopIP := devices[0].IP.String()

	t.Run("runs as nobody, with no TUN", func(t *testing.T) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", client.PID()))
		must(t, err)
		if !strings.Contains(string(st), "\nUid:\t65534\t65534\t65534\t65534\n") || !strings.Contains(string(st), "\nCapEff:\t0000000000000000\n") {
			t.Fatalf("the client is not an unprivileged nobody:\n%s", st)
		}
		links := w.laptop.MustExec(t, "ip", "-o", "link", "show")
		if strings.Contains(links, "sy1") || strings.Contains(links, "tun") {
			t.Fatalf("the laptop namespace has a TUN:\n%s", links)
		}
		if routes := w.laptop.MustExec(t, "ip", "route", "show", "table", "all"); strings.Contains(routes, "10.1.") {
			t.Fatalf("the laptop has routes to the site:\n%s", routes)
		}
	})
	t.Run("curl through socks5 reaches the site, which sees the overlay IP", func(t *testing.T) {
		var out string
		err := eventually(15*time.Second, func() error {
			var err error
			out, err = w.laptop.Exec("curl", "-sS", "--max-time", "3", "--socks5-hostname", "127.0.0.1:1080", "http://10.1.2.3:8000/")
			return err
		})
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, client.Output())
		}
		if host, _, _ := strings.Cut(strings.TrimSpace(out), ":"); host != laptopIP {
			t.Fatalf("the site's server saw %q, want the overlay IP %s", out, laptopIP)
		}
	})
	t.Run("a site host reaches the exposed port", func(t *testing.T) {
		wantPeer(t, w.hosta, "tcp", laptopIP+":7000", "127.0.0.1")
		if _, err := w.hosta.TCPEcho(laptopIP + ":7001"); err == nil {
			t.Fatal("a port that is not exposed answered")
		}
	})
	t.Run("a proxy port in use is a clear error", func(t *testing.T) {
		out, err := w.laptop.Exec("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
			"env", "GORACE=atexit_sleep_ms=0", bin, "client", "up", "--userspace", "--state-dir", state+"-2", "--socks5", "127.0.0.1:1080")
		if err == nil || !strings.Contains(out, "listen for socks5 on 127.0.0.1:1080") || !strings.Contains(out, "address already in use") {
			t.Fatalf("a second client on the same port: %v\n%s", err, out)
		}
	})
	must(t, client.Stop())
}
