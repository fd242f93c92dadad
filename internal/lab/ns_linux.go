package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// NS is a named network namespace of a Lab.
type NS struct {
	lab    *Lab
	name   string
	handle netns.NsHandle // set once during creation, closed at teardown
}

// Name returns the namespace's full name, as used by `ip netns exec`.
func (n *NS) Name() string { return n.name }

// String returns the namespace's full name.
func (n *NS) String() string { return n.name }

// Exec runs args inside the namespace with `ip netns exec`, bounded by the Lab's exec timeout, and returns stdout and stderr combined.
func (n *NS) Exec(args ...string) (string, error) {
	return n.ExecContext(context.Background(), args...)
}

// ExecContext is Exec bounded by ctx as well as by the Lab's exec timeout.
func (n *NS) ExecContext(ctx context.Context, args ...string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("lab: exec in netns %s: no command", n.name)
	}
	timeout, _ := n.lab.timeouts()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := runCmd(ctx, n.lab.ipPath, append([]string{"netns", "exec", n.name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("lab: exec %q in netns %s: %w: %s", strings.Join(args, " "), n.name, err, strings.TrimSpace(out))
	}
	return out, nil
}

// MustExec is Exec that fails t on error.
func (n *NS) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runCmd runs name with args in its own process group, killing the whole group when ctx is done.
func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // children that keep the output pipe open do not block Wait
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return string(out), err
}

// AddAddr adds cidr (e.g. "192.0.2.1/24", "2001:db8::1/64"; IPv6 without DAD) to the interface ifname.
func (n *NS) AddAddr(ifname, cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("lab: add address to %s in netns %s: %w", ifname, n.name, err)
	}
	args := []string{"-n", n.name, "addr", "add", p.String(), "dev", ifname}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	return n.lab.ip(args...)
}

// Route runs `ip route args...` inside the namespace, e.g. Route("add", "default", "via", "192.0.2.1").
func (n *NS) Route(args ...string) error {
	return n.lab.ip(append([]string{"-n", n.name, "route"}, args...)...)
}

// Sysctl sets key (e.g. "net.ipv4.ip_forward", or a path under /proc/sys) to value inside the namespace.
func (n *NS) Sysctl(key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return fmt.Errorf("lab: sysctl %s in netns %s: %w", key, n.name, err)
	}
	err = n.Do(func() error { return os.WriteFile(p, []byte(value), 0) })
	if err != nil {
		return fmt.Errorf("lab: sysctl %s=%s in netns %s: %w", key, value, n.name, err)
	}
	return nil
}

// ReadSysctl returns the value of key inside the namespace, without the trailing newline.
func (n *NS) ReadSysctl(key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", fmt.Errorf("lab: read sysctl %s in netns %s: %w", key, n.name, err)
	}
	var b []byte
	err = n.Do(func() (err error) {
		b, err = os.ReadFile(p)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("lab: read sysctl %s in netns %s: %w", key, n.name, err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// sysctlPath maps "net.ipv4.ip_forward" or "net/ipv4/ip_forward" to its file under /proc/sys.
func sysctlPath(key string) (string, error) {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	p := path.Join("/proc/sys", key)
	if key == "" || !strings.HasPrefix(p, "/proc/sys/") || strings.Contains(key, "..") {
		return "", errors.New("not a sysctl key")
	}
	return p, nil
}

// Ping sends count echo requests to the IP literal addr with the system ping and fails unless all count replies arrive.
func (n *NS) Ping(addr string, count int) error {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("lab: ping %s from netns %s: %w", addr, n.name, err)
	}
	if count < 1 {
		return fmt.Errorf("lab: ping %s from netns %s: count %d < 1", addr, n.name, count)
	}
	fam := "-4"
	if ip.Is4In6() {
		addr = ip.Unmap().String()
	} else if ip.Is6() {
		fam = "-6"
	}
	// 0.2 s apart, 1 s per reply, count+2 s overall: ping exits non-zero unless all replies arrive in time.
	deadline := strconv.Itoa((count+4)/5 + 2)
	_, err = n.Exec("ping", fam, "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", "-w", deadline, addr)
	return err
}

// Do runs fn on an OS thread switched into the namespace; sockets fn opens stay in the namespace. fn must not rely on goroutines it starts being in the namespace.
func (n *NS) Do(fn func() error) error {
	type result struct {
		err      error
		panicked bool
		val      any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() { done <- r }()
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			r.err = fmt.Errorf("lab: get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			runtime.UnlockOSThread()
			r.err = fmt.Errorf("lab: enter netns %s: %w", n.name, err)
			return
		}
		defer func() {
			if err := netns.Set(orig); err != nil {
				// Stay locked: the runtime then ends this thread with the goroutine.
				r.err = errors.Join(r.err, fmt.Errorf("lab: leave netns %s: %w", n.name, err))
				return
			}
			runtime.UnlockOSThread()
		}()
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.panicked, r.val = true, v
				}
			}()
			r.err = fn()
		}()
	}()
	r := <-done
	if r.panicked {
		panic(r.val)
	}
	return r.err
}

// Handle returns the namespace's handle, for APIs that take one (netlink.NewHandleAt,
// routing/host.NewNetlinkOps). It stays open until the Lab's cleanup; do not close it.
func (n *NS) Handle() netns.NsHandle { return n.handle }

// Enter locks the calling goroutine to its OS thread and moves that thread
// into the namespace until t's cleanup, for code under test that works on
// "the current namespace" (creating a TUN, netlink calls without a handle)
// and a test body that calls t.Fatal. Call it from the goroutine running t,
// after the topology is built, and at most once per test. Cleanups that t
// registers after Enter run inside the namespace. If the thread cannot be
// moved back, it stays locked and the runtime ends it with the goroutine.
func (n *NS) Enter(t testing.TB) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("lab: get current netns: %v", err)
	}
	if err := netns.Set(n.handle); err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("lab: enter netns %s: %v", n.name, err)
	}
	t.Cleanup(func() {
		err := netns.Set(orig)
		orig.Close()
		if err != nil {
			t.Errorf("lab: leave netns %s: %v", n.name, err)
			return
		}
		runtime.UnlockOSThread()
	})
}

// checkLiteral rejects host names for IP networks: resolving them would run outside the namespace.
func checkLiteral(network, addr string) error {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("host %q is not an IP literal", host)
	}
	return nil
}

// Listen opens a listener inside the namespace; the Lab closes it at teardown if the test has not.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	ln, err := n.listen(network, addr)
	if err != nil {
		return nil, err
	}
	if !n.lab.track(ln) {
		ln.Close()
		return nil, fmt.Errorf("lab: listen %s %s in netns %s: lab already cleaned up", network, addr, n.name)
	}
	return ln, nil
}

func (n *NS) listen(network, addr string) (ln net.Listener, err error) {
	if err := checkLiteral(network, addr); err != nil {
		return nil, fmt.Errorf("lab: listen %s %s in netns %s: %w", network, addr, n.name, err)
	}
	err = n.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: listen %s %s in netns %s: %w", network, addr, n.name, err)
	}
	return ln, nil
}

// ListenPacket opens a packet socket inside the namespace; the Lab closes it at teardown if the test has not.
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	pc, err := n.listenPacket(network, addr)
	if err != nil {
		return nil, err
	}
	if !n.lab.track(pc) {
		pc.Close()
		return nil, fmt.Errorf("lab: listen %s %s in netns %s: lab already cleaned up", network, addr, n.name)
	}
	return pc, nil
}

func (n *NS) listenPacket(network, addr string) (pc net.PacketConn, err error) {
	if err := checkLiteral(network, addr); err != nil {
		return nil, fmt.Errorf("lab: listen %s %s in netns %s: %w", network, addr, n.name, err)
	}
	err = n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: listen %s %s in netns %s: %w", network, addr, n.name, err)
	}
	return pc, nil
}

// Dial connects from inside the namespace to the IP literal address addr within DialTimeout; the caller closes the connection.
func (n *NS) Dial(network, addr string) (net.Conn, error) {
	return n.dial(network, addr, DialTimeout)
}

func (n *NS) dial(network, addr string, timeout time.Duration) (c net.Conn, err error) {
	if err := checkLiteral(network, addr); err != nil {
		return nil, fmt.Errorf("lab: dial %s %s from netns %s: %w", network, addr, n.name, err)
	}
	err = n.Do(func() (err error) {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: dial %s %s from netns %s: %w", network, addr, n.name, err)
	}
	return c, nil
}
