//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/lab"
)

// pingStream is the system ping sending from a namespace at a fixed
// interval until stop.
type pingStream struct {
	t     *testing.T
	p     *lab.Proc
	every time.Duration
}

// pingRun is what a stopped pingStream saw.
type pingRun struct {
	sent, answered int
	worst          int // the longest run of unanswered pings
	every          time.Duration
	// silence is the longest time without a reply, less one interval: ping
	// sends late, not on its schedule, when it is starved or its sends fail,
	// so this is the outage in time, where gap counts pings.
	silence time.Duration
}

// gap is the longest outage the run saw: lost pings times the interval.
func (r pingRun) gap() time.Duration { return time.Duration(r.worst) * r.every }

// lost is how many pings went unanswered.
func (r pingRun) lost() int { return r.sent - r.answered }

var (
	pingReply = regexp.MustCompile(`\[(\d+\.\d+)\] .*bytes from .* icmp_seq=(\d+)`)
	pingSent  = regexp.MustCompile(`(\d+) packets transmitted`)
)

// startPings pings dst from ns every interval (at most for max, a bound in
// case stop is never reached) until stop.
func startPings(t *testing.T, ns *lab.NS, dst string, every, max time.Duration) *pingStream {
	t.Helper()
	p := ns.Start(t, "ping", "-n", "-D", "-i", strconv.FormatFloat(every.Seconds(), 'f', 3, 64), "-W", "1",
		"-w", strconv.Itoa(int(max/time.Second)+1), dst)
	return &pingStream{t: t, p: p, every: every}
}

// stop ends the stream with SIGINT, which makes ping print its summary, and
// returns what it saw. A ping still in flight when it stops is not counted
// as lost.
func (s *pingStream) stop() pingRun {
	s.t.Helper()
	stopped := time.Now()
	syscall.Kill(s.p.PID(), syscall.SIGINT)
	select {
	case <-s.exited():
	case <-time.After(5 * time.Second):
		s.t.Fatalf("ping did not exit 5 s after SIGINT:\n%s", s.p.Output())
	}
	out := s.p.Output()
	m := pingSent.FindStringSubmatch(out)
	if m == nil {
		s.t.Fatalf("ping printed no summary:\n%s", out)
	}
	r := pingRun{every: s.every}
	r.sent, _ = strconv.Atoi(m[1])
	prev, last := 0, time.Time{}
	for _, m := range pingReply.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(m[2])
		if seq <= prev {
			continue // a duplicate
		}
		at := unixTime(m[1])
		if !last.IsZero() {
			r.silence = max(r.silence, at.Sub(last)-s.every)
		}
		r.worst = max(r.worst, seq-prev-1)
		r.answered++
		prev, last = seq, at
	}
	if !last.IsZero() {
		r.silence = max(r.silence, stopped.Sub(last)-2*s.every) // one may be on its way
	}
	if r.sent > 0 {
		r.sent-- // the last one may still have been on its way
	}
	r.worst = max(r.worst, r.sent-prev) // lost until the end: never recovered
	r.answered = min(r.answered, r.sent)
	return r
}

// unixTime parses ping -D's seconds.microseconds.
func unixTime(s string) time.Time {
	sec, frac, _ := strings.Cut(s, ".")
	secs, _ := strconv.ParseInt(sec, 10, 64)
	frac = (frac + "000000000")[:9]
	nsecs, _ := strconv.ParseInt(frac, 10, 64)
	return time.Unix(secs, nsecs)
}

// exited is closed when the ping process has exited.
func (s *pingStream) exited() <-chan struct{} {
	c := make(chan struct{})
	go func() { s.p.Wait(); close(c) }()
	return c
}

// tcpTransfer streams data from one namespace to a server it starts at addr
// in another, over one TCP connection, for d (about 1 MB/s), and returns a
// channel that yields nil once the server confirmed every byte. The
// connection gives up 30 s after d.
func tcpTransfer(t *testing.T, from, to *lab.NS, addr string, d time.Duration) <-chan error {
	t.Helper()
	ln, err := to.Listen("tcp", addr)
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(d + 30*time.Second))
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "%d\n", n)
	}()
	done := make(chan error, 1)
	c, err := from.Dial("tcp", addr)
	must(t, err)
	go func() {
		defer c.Close()
		chunk := make([]byte, 16<<10)
		var sent int64
		c.SetDeadline(time.Now().Add(d + 30*time.Second))
		for start := time.Now(); time.Since(start) < d; time.Sleep(16 * time.Millisecond) {
			n, err := c.Write(chunk)
			sent += int64(n)
			if err != nil {
				done <- fmt.Errorf("TCP transfer broke after %d bytes: %w", sent, err)
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
		line, err := bufio.NewReader(c).ReadString('\n')
		got, _ := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		if err != nil || got != sent {
			done <- fmt.Errorf("TCP transfer: the server received %d of %d bytes (%v)", got, sent, err)
			return
		}
		done <- nil
	}()
	return done
}
