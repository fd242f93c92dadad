package agent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/tun"
)

// sshLike serves on port 22 of the site host what an ssh session needs of
// TCP: it names the peer it sees, echoes each line, and after the client's
// half close sends a last line and closes. To the line "abort" it answers
// "aborting", then closes with what the client sends next unread: the
// stack resets the connection.
func sshLike(t *testing.T, site *tun.Netstack) {
	t.Helper()
	l, err := site.ListenTCP(22)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
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
					if line == "abort\n" {
						io.WriteString(c, "aborting\n")
						time.Sleep(50 * time.Millisecond) // the client's next bytes arrive, unread
						return
					}
					n++
					io.WriteString(c, "echo "+line)
				}
				fmt.Fprintf(c, "bye after %d lines\n", n)
			}()
		}
	}()
}

// sshSession runs a session against sshLike and returns the address the
// server saw.
func sshSession(t *testing.T, w io.Writer, closeWrite func() error, r *bufio.Reader) netip.Addr {
	t.Helper()
	hello, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("the server's greeting: %q, %v", hello, err)
	}
	from, err := netip.ParseAddrPort(strings.TrimSpace(strings.TrimPrefix(hello, "hello ")))
	if err != nil {
		t.Fatalf("the server's greeting %q: %v", hello, err)
	}
	for i := range 5 {
		fmt.Fprintf(w, "ls %d\n", i)
		if got, err := r.ReadString('\n'); err != nil || got != fmt.Sprintf("echo ls %d\n", i) {
			t.Fatalf("round trip %d: %q, %v", i, got, err)
		}
	}
	if err := closeWrite(); err != nil {
		t.Fatalf("half close: %v", err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != "bye after 5 lines\n" {
		t.Fatalf("after the half close: %q, %v", got, err)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after the server closed: %q, %v", rest, err)
	}
	return from.Addr()
}

// abortedSession asks sshLike through an access tcp listener to abort and
// returns how the stream ended (nil: a clean end, as if complete).
func abortedSession(t *testing.T, addr string) error {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	if hello, err := r.ReadString('\n'); err != nil {
		t.Fatalf("the server's greeting: %q, %v", hello, err)
	}
	io.WriteString(c, "abort\n")
	if got, err := r.ReadString('\n'); err != nil || got != "aborting\n" {
		t.Fatalf("the server's answer to abort: %q, %v", got, err)
	}
	io.WriteString(c, "left unread\n")
	_, err = io.ReadAll(r)
	return err
}

// startAccess runs access tcp on a free port and returns its address and
// stop, which ends it and returns what it returned.
func startAccess(t *testing.T, cfg agent.AccessConfig) (string, func() error) {
	t.Helper()
	cfg.Listener = "127.0.0.1:0"
	addr := make(chan string, 1)
	cfg.Listening = func(a net.Addr) { addr <- a.String() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.RunAccess(ctx, cfg) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("access tcp did not stop within 10 s")
		}
	})
	t.Cleanup(func() { stop() })
	select {
	case a := <-addr:
		return a, stop
	case err := <-done:
		t.Fatalf("access tcp: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("access tcp did not listen within 20 s")
	}
	return "", nil
}

// accessSession connects to an access tcp listener and runs an ssh-like
// session through it, retrying the first connection while the tunnel
// comes up.
func accessSession(t *testing.T, addr string) netip.Addr {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(c)
		if _, err := r.Peek(1); err != nil { // the tunnel is not up yet: access closed it
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("access tcp on %s: no greeting within 20 s: %v", addr, err)
			}
			continue
		}
		defer c.Close()
		return sshSession(t, c, c.(*net.TCPConn).CloseWrite, r)
	}
}

// TestAccessTCPInProcess runs an edge, a connector with a site host at
// 192.0.2.10 serving an ssh-like echo on port 22, and a userspace client:
// access tcp carries the session through the running client (on a port and
// on stdio), then, with the client stopped, through a session of its own
// with the state dir's credential (where the server's reset reaches the
// local connection as a reset); the server sees the device's overlay
// address each time. A destination the tunnel does not carry, and a
// revoked credential, fail clearly.
func TestAccessTCPInProcess(t *testing.T) {
	admin := startEdge(t)
	ctx := context.Background()
	tunnelToken, enrollToken := setUpSiteA(t, admin, "access")
	conn := newInProcessAgent(t, "sy0")
	conn.run(t, func(ctx context.Context) error {
		return agent.RunConnector(ctx, agent.ConnectorConfig{Token: tunnelToken, StateDir: conn.stateDir, TunName: "sy0", Seams: conn.seams()})
	})
	sshLike(t, siteHost(t, conn, netip.MustParseAddr("192.0.2.10")))

	cli := newInProcessAgent(t, "sy1")
	cli.run(t, func(ctx context.Context) error {
		return agent.RunClient(ctx, agent.ClientConfig{Token: enrollToken, StateDir: cli.stateDir, Name: "laptop",
			Userspace: &agent.UserspaceConfig{SOCKS5: freePort(t)}, Seams: agent.Seams{Bind: cli.bind}})
	})
	var laptop netip.Addr
	for deadline := time.Now().Add(15 * time.Second); !laptop.IsValid(); time.Sleep(50 * time.Millisecond) {
		devs, err := admin.ListDevices(ctx, false)
		if err == nil && len(devs) == 1 {
			laptop = devs[0].IP
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client did not enroll within 15 s: %+v, %v", devs, err)
		}
	}

	// Through the running client, on a port.
	addr, stop := startAccess(t, agent.AccessConfig{StateDir: cli.stateDir, Destination: "192.0.2.10:22"})
	if from := accessSession(t, addr); from != laptop {
		t.Fatalf("through the running client the server saw %v, want the overlay address %v", from, laptop)
	}
	before := cli.bind.sent.Load()
	if from := accessSession(t, addr); from != laptop || cli.bind.sent.Load() == before {
		t.Fatalf("a second session: seen from %v; the client's bind sent %d → %d", from, before, cli.bind.sent.Load())
	}
	if err := stop(); err != nil {
		t.Errorf("access tcp after a stop = %v", err)
	}

	// Through the running client, on stdio.
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	stdioDone := make(chan error, 1)
	go func() {
		stdioDone <- agent.RunAccess(ctx, agent.AccessConfig{StateDir: cli.stateDir, Destination: "192.0.2.10:22", Stdio: true, Stdin: inR, Stdout: outW})
		outW.Close()
	}()
	timer := time.AfterFunc(30*time.Second, func() { inW.CloseWithError(io.ErrClosedPipe); outW.CloseWithError(io.ErrClosedPipe) })
	if from := sshSession(t, inW, inW.Close, bufio.NewReader(outR)); from != laptop {
		t.Fatalf("on stdio the server saw %v, want %v", from, laptop)
	}
	timer.Stop()
	if err := <-stdioDone; err != nil {
		t.Errorf("access tcp --stdio = %v", err)
	}

	// A destination the split tunnel does not carry.
	err := agent.RunAccess(ctx, agent.AccessConfig{StateDir: cli.stateDir, Destination: "127.0.0.1:22", Stdio: true, Stdin: strings.NewReader(""), Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "the split tunnel does not carry 127.0.0.1") {
		t.Errorf("access tcp to a destination outside the tunnel = %v", err)
	}

	// Standalone: the client is gone; access tcp brings up its own session.
	if err := cli.shutdown(t); err != nil {
		t.Fatalf("the userspace client: %v", err)
	}
	bind := cli.bind // reopened by the session of its own
	before = bind.sent.Load()
	addr, stop = startAccess(t, agent.AccessConfig{StateDir: cli.stateDir, Destination: "192.0.2.10:22", Seams: agent.Seams{Bind: bind}})
	if from := accessSession(t, addr); from != laptop {
		t.Fatalf("standalone the server saw %v, want %v", from, laptop)
	}
	if bind.sent.Load() == before {
		t.Error("standalone access tcp sent nothing through its Seams.Bind")
	}
	// A reset reaches the local connection as a reset, not as the end of
	// a complete stream.
	if err := abortedSession(t, addr); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("standalone, the server's reset read as %v; want %v", err, syscall.ECONNRESET)
	}
	if err := stop(); err != nil {
		t.Errorf("standalone access tcp after a stop = %v", err)
	}

	// Revoked: the credential is refused, and access tcp says so.
	if _, err := admin.RevokeDevice(ctx, laptop.String()); err != nil {
		if _, err = admin.RevokeDevice(ctx, "laptop"); err != nil {
			t.Fatalf("revoke: %v", err)
		}
	}
	err = agent.RunAccess(ctx, agent.AccessConfig{StateDir: cli.stateDir, Destination: "192.0.2.10:22", Listener: freePort(t), Seams: agent.Seams{Bind: bind}})
	if err == nil || !strings.Contains(err.Error(), "the edge refused the device credential in "+cli.stateDir) {
		t.Errorf("access tcp with a revoked credential = %v", err)
	}
}

// TestAccessTCPErrors: a port in use, a malformed destination and a state
// dir without an enrolled device fail at once, each saying so.
func TestAccessTCPErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg  agent.AccessConfig
		want string
	}{
		{agent.AccessConfig{StateDir: dir, Destination: "192.0.2.10:22", Listener: l.Addr().String()}, "listen on " + l.Addr().String() + ": listen tcp " + l.Addr().String() + ": bind: address already in use"},
		{agent.AccessConfig{StateDir: dir, Destination: "192.0.2.10", Listener: "127.0.0.1:0"}, `destination "192.0.2.10" is not HOST:PORT`},
		{agent.AccessConfig{StateDir: dir, Destination: "192.0.2.10:99999", Stdio: true}, "not a number from 1 to 65535"},
		{agent.AccessConfig{StateDir: dir, Destination: "192.0.2.10:22"}, "give one of --listener and --stdio"},
		{agent.AccessConfig{StateDir: dir, Destination: "192.0.2.10:22", Listener: "127.0.0.1:0"}, "no enrolled device in state dir " + dir},
	} {
		err := agent.RunAccess(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RunAccess(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}
