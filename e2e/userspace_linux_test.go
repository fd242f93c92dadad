//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
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
// and reaches the laptop's local server; `access tcp` as nobody carries an
// ssh-like session (round trips, a half close) to site A's host, through
// the running client, on --stdio, and standalone with the client stopped.
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
	// Site A's ssh-like server, for access tcp.
	sshLn, err := w.hosta.Listen("tcp", "10.1.2.3:22")
	must(t, err)
	defer sshLn.Close()
	go serveSSHLike(sshLn)
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
		// By kind, not name: the lab's own links carry a random prefix
		// that may start with "sy1".
		if links := w.laptop.MustExec(t, "ip", "-o", "link", "show", "type", "tun"); strings.TrimSpace(links) != "" {
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
	nobody := []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", "env", "GORACE=atexit_sleep_ms=0", bin}
	accessSession := func(t *testing.T, listen string) {
		t.Helper()
		err := eventually(15*time.Second, func() error {
			c, err := w.laptop.Dial("tcp", listen)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			from, err := sshLikeSession(c, c.(*net.TCPConn).CloseWrite)
			if err == nil && from != laptopIP {
				t.Fatalf("the site's server saw %s, want the overlay IP %s", from, laptopIP)
			}
			return err
		})
		if err != nil {
			t.Fatalf("an ssh-like session through access tcp on %s: %v", listen, err)
		}
	}
	t.Run("access tcp as nobody carries an ssh-like session through the running client", func(t *testing.T) {
		access := w.laptop.Start(t, append(nobody, "access", "tcp", "--listener", "127.0.0.1:2222", "--destination", "10.1.2.3:22", "--state-dir", state)...)
		if err := access.WaitFor("through the running client", 10*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, access.Output())
		}
		if err := access.WaitFor("forwarding", 10*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, access.Output())
		}
		accessSession(t, "127.0.0.1:2222")
		accessSession(t, "127.0.0.1:2222")
		must(t, access.Stop())
	})
	t.Run("access tcp --stdio, as ssh's ProxyCommand runs it", func(t *testing.T) {
		// stdin ends after two lines: the half close; the server's last
		// line after it reaches stdout, and access tcp exits.
		cmd := strings.Join(append(nobody, "access", "tcp", "--stdio", "--destination", "10.1.2.3:22", "--state-dir", state), " ")
		out, err := w.laptop.Exec("sh", "-c", "printf 'ls 0\\nls 1\\n' | timeout 20 "+cmd)
		want := "hello " + laptopIP + "\necho ls 0\necho ls 1\nbye after 2 lines\n"
		if err != nil || !strings.HasPrefix(out, "hello "+laptopIP+":") || !strings.HasSuffix(out, "\necho ls 0\necho ls 1\nbye after 2 lines\n") {
			t.Fatalf("access tcp --stdio: %v\n%q, want %q with the port", err, out, want)
		}
	})
	t.Run("access tcp to a malformed destination is a clear error", func(t *testing.T) {
		out, err := w.laptop.Exec(append(nobody, "access", "tcp", "--listener", "127.0.0.1:2223", "--destination", "10.1.2.3", "--state-dir", state)...)
		if err == nil || !strings.Contains(out, `destination "10.1.2.3" is not HOST:PORT`) {
			t.Fatalf("a malformed destination: %v\n%s", err, out)
		}
	})
	must(t, client.Stop())
	t.Run("access tcp as nobody with no client running starts its own session", func(t *testing.T) {
		access := w.laptop.Start(t, append(nobody, "access", "tcp", "--listener", "127.0.0.1:2222", "--destination", "10.1.2.3:22", "--state-dir", state)...)
		if err := access.WaitFor("starting a userspace session", 10*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, access.Output())
		}
		if err := access.WaitFor("forwarding", 20*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, access.Output())
		}
		accessSession(t, "127.0.0.1:2222")
		if links := w.laptop.MustExec(t, "ip", "-o", "link", "show", "type", "tun"); strings.TrimSpace(links) != "" {
			t.Fatalf("standalone access tcp made a TUN:\n%s", links)
		}
		must(t, access.Stop())
	})
}

// serveSSHLike serves what an ssh session needs of TCP on ln: a greeting
// naming the peer it sees, an echo of each line, and after the client's
// half close a last line, then the close.
func serveSSHLike(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "hello %s\n", c.RemoteAddr())
			r, n := bufio.NewReader(c), 0
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					break
				}
				n++
				io.WriteString(c, "echo "+line)
			}
			fmt.Fprintf(c, "bye after %d lines\n", n)
		}()
	}
}

// sshLikeSession runs round trips and a half close against serveSSHLike on
// c and returns the address the server saw.
func sshLikeSession(c net.Conn, closeWrite func() error) (string, error) {
	r := bufio.NewReader(c)
	hello, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("greeting: %q, %w", hello, err)
	}
	for i := range 5 {
		fmt.Fprintf(c, "ls %d\n", i)
		if got, err := r.ReadString('\n'); err != nil || got != fmt.Sprintf("echo ls %d\n", i) {
			return "", fmt.Errorf("round trip %d: %q, %v", i, got, err)
		}
	}
	if err := closeWrite(); err != nil {
		return "", fmt.Errorf("half close: %w", err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != "bye after 5 lines\n" {
		return "", fmt.Errorf("after the half close: %q, %v", got, err)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		return "", fmt.Errorf("after the server closed: %q, %v", rest, err)
	}
	host, _, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(hello, "hello ")), ":")
	return host, nil
}
