package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestParseDestination: HOST:PORT with a port from 1 to 65535; anything
// else is refused with a message that says why.
func TestParseDestination(t *testing.T) {
	for _, tc := range []struct {
		in, host string
		port     uint16
		err      string
	}{
		{in: "192.0.2.10:22", host: "192.0.2.10", port: 22},
		{in: "[2001:db8::1]:443", host: "2001:db8::1", port: 443},
		{in: "db.example.net:5432", host: "db.example.net", port: 5432},
		{in: "192.0.2.10", err: "is not HOST:PORT"},
		{in: "2001:db8::1:22", err: "is not HOST:PORT"},
		{in: ":22", err: "host \"\""},
		{in: "192.0.2.10:0", err: "not a number from 1 to 65535"},
		{in: "192.0.2.10:65536", err: "not a number from 1 to 65535"},
		{in: "192.0.2.10:ssh", err: "not a number from 1 to 65535"},
		{in: "", err: "is not HOST:PORT"},
	} {
		host, port, err := ParseDestination(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDestination(%q) = %q, %d, %v; want an error with %q", tc.in, host, port, err, tc.err)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("ParseDestination(%q) = %q, %d, %v; want %q, %d", tc.in, host, port, err, tc.host, tc.port)
		}
	}
}

// halfCloseServer echoes each line it reads and, at the end of its input
// (the client's half close), sends a summary and closes: a client sees
// the summary only if its half close arrived and the way back stayed open.
func halfCloseServer(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
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
				r, n := bufio.NewReader(c), 0
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						break
					}
					n++
					io.WriteString(c, "echo "+line)
				}
				fmt.Fprintf(c, "eof after %d lines\n", n)
			}()
		}
	}()
	return l
}

// session runs an ssh-like exchange on c: round trips, a half close, the
// server's last words after it.
func session(t *testing.T, w io.Writer, closeWrite func() error, r *bufio.Reader) {
	t.Helper()
	for i := range 3 {
		fmt.Fprintf(w, "line %d\n", i)
		if got, err := r.ReadString('\n'); err != nil || got != fmt.Sprintf("echo line %d\n", i) {
			t.Fatalf("round trip %d: %q, %v", i, got, err)
		}
	}
	if err := closeWrite(); err != nil {
		t.Fatalf("half close: %v", err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != "eof after 3 lines\n" {
		t.Fatalf("after the half close: %q, %v (want the server's summary)", got, err)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after the server closed: %q, %v", rest, err)
	}
}

// TestForwardHalfClose: the forwarding loop carries round trips both ways,
// passes the client's half close on, keeps the way back open for the
// server's answer, and passes the server's close back.
func TestForwardHalfClose(t *testing.T) {
	srv := halfCloseServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", srv.Addr().String())
	}
	go func() { done <- forward(dial, srv.Addr().String(), slog.New(slog.DiscardHandler))(ctx, l) }()
	for range 2 { // one connection after another on the same listener
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		session(t, c, c.(*net.TCPConn).CloseWrite, bufio.NewReader(c))
		c.Close()
	}
	// A destination that refuses: the local connection is closed at once.
	srv.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a connection to a refusing destination: read %d, %v; want EOF", n, err)
	}
	c.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("forward after a stop = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("forward did not return after a stop")
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("the listener still accepts after forward returned")
	}
}

// TestPipeStdioHalfClose: stdin's end reaches the destination as a half
// close, and what the destination sends after it still reaches stdout;
// pipeStdio returns once the destination closed.
func TestPipeStdioHalfClose(t *testing.T) {
	srv := halfCloseServer(t)
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- pipeStdio(context.Background(), inR, outW, c); outW.Close() }()
	deadline := time.AfterFunc(10*time.Second, func() { inW.CloseWithError(io.ErrClosedPipe); c.Close() })
	defer deadline.Stop()
	session(t, inW, inW.Close, bufio.NewReader(outR))
	if err := <-done; err != nil {
		t.Errorf("pipeStdio = %v", err)
	}
}
