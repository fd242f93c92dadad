package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a background process running inside a namespace.
type Proc struct {
	ns    *NS
	args  []string
	cmd   *exec.Cmd
	grace time.Duration
	out   syncBuffer

	done    chan struct{} // closed when the process has exited and been waited for
	waitErr error         // set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start runs args in the background inside the namespace; it is stopped in t.Cleanup (and at Lab teardown), and its output is logged there if t failed.
func (n *NS) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	p, err := n.start(args)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if did, err := p.stop(); did && err != nil {
			t.Logf("lab: cleanup: %v", err)
		}
		if t.Failed() {
			t.Logf("lab: output of %v:\n%s", p, tail(p.Output(), 4096))
		}
	})
	return p
}

func (n *NS) start(args []string) (*Proc, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("lab: start in netns %s: no command", n.name)
	}
	_, grace := n.lab.timeouts()
	p := &Proc{ns: n, args: args, grace: grace, done: make(chan struct{})}
	p.out.changed = make(chan struct{})
	cmd := exec.Command(n.lab.ipPath, append([]string{"netns", "exec", n.name}, args...)...)
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	// A process group of its own, so Stop reaches its children too; killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	p.cmd = cmd
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %q in netns %s: %w", strings.Join(args, " "), n.name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if !n.lab.track(p) {
		p.Stop()
		return nil, fmt.Errorf("lab: start %q in netns %s: lab already cleaned up", strings.Join(args, " "), n.name)
	}
	return p, nil
}

// String describes the process for messages.
func (p *Proc) String() string {
	return fmt.Sprintf("%q (pid %d) in netns %s", strings.Join(p.args, " "), p.cmd.Process.Pid, p.ns.name)
}

// PID returns the process ID (ip netns exec replaces itself with the command, so this is the command's).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Output returns everything the process has written to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Wait blocks until the process exits and returns its exit error.
func (p *Proc) Wait() error {
	<-p.done
	return p.waitErr
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitFor waits until the output contains substr, failing when timeout passes or the process exits first.
func (p *Proc) WaitFor(substr string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		ok, changed := p.out.contains(substr)
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if ok, _ := p.out.contains(substr); ok {
				return nil
			}
			return fmt.Errorf("lab: %v exited (%v) before printing %q", p, p.waitErr, substr)
		case <-timer.C:
			return fmt.Errorf("lab: %v did not print %q within %v", p, substr, timeout)
		}
	}
}

// Stop sends SIGTERM to the process group, SIGKILL after the grace period, and waits; it returns nil if the process exited cleanly or by that SIGTERM.
func (p *Proc) Stop() error {
	_, err := p.stop()
	return err
}

// Close is Stop, for io.Closer.
func (p *Proc) Close() error { return p.Stop() }

// stop is Stop that also reports whether this call did the stopping.
func (p *Proc) stop() (did bool, err error) {
	p.stopOnce.Do(func() {
		did = true
		p.stopErr = p.terminate()
	})
	return did, p.stopErr
}

func (p *Proc) terminate() error {
	if p.Exited() {
		if p.waitErr != nil {
			return fmt.Errorf("lab: %v exited before stop: %w", p, p.waitErr)
		}
		return nil
	}
	// The group's ID is the leader's PID, which stays reserved while the
	// group has members, so this signals only our processes.
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	timer := time.NewTimer(p.grace)
	defer timer.Stop()
	select {
	case <-p.done:
		syscall.Kill(-pgid, syscall.SIGKILL) // children that outlived the leader
		if p.waitErr == nil || byTerm(p.waitErr) {
			return nil
		}
		return fmt.Errorf("lab: stop %v: %w", p, p.waitErr)
	case <-timer.C:
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("lab: stop %v: still running %v after SIGTERM, killed", p, p.grace)
}

// byTerm reports whether err says the process died of SIGTERM, directly or as a shell's exit status 143.
func byTerm(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok {
		return false
	}
	return (ws.Signaled() && ws.Signal() == syscall.SIGTERM) || (ws.Exited() && ws.ExitStatus() == 128+int(syscall.SIGTERM))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// syncBuffer is a bytes.Buffer safe for concurrent use that signals each write.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

// Write appends b and wakes waiters.
func (s *syncBuffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(b)
	close(s.changed)
	s.changed = make(chan struct{})
	return n, err
}

// String returns a copy of the contents.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// contains reports whether the contents hold substr, and a channel closed on the next write.
func (s *syncBuffer) contains(substr string) (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.b.Bytes(), []byte(substr)), s.changed
}
