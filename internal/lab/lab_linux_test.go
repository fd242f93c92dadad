package lab

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// pair builds a-b with 192.0.2.1/24, 2001:db8::1/64 on a and .2/::2 on b.
func pair(t *testing.T) (l *Lab, a, b *NS) {
	t.Helper()
	l = New(t)
	a, b = l.NS("a"), l.NS("b")
	aIf, bIf := l.Link(a, "192.0.2.1/24", b, "192.0.2.2/24")
	if err := a.AddAddr(aIf, "2001:db8::1/64"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddr(bIf, "2001:db8::2/64"); err != nil {
		t.Fatal(err)
	}
	return l, a, b
}

func TestLinkPing(t *testing.T) {
	l, a, b := pair(t)
	if !strings.HasPrefix(a.Name(), l.Prefix()+"-") {
		t.Errorf("Name() = %q, want prefix %q", a.Name(), l.Prefix())
	}
	if _, err := os.Stat(filepath.Join(netnsDir, a.Name())); err != nil {
		t.Errorf("namespace not visible to ip netns: %v", err)
	}
	for _, tc := range []struct {
		name string
		from *NS
		to   string
	}{
		{"a->b v4", a, "192.0.2.2"},
		{"b->a v4", b, "192.0.2.1"},
		{"a->b v6", a, "2001:db8::2"},
		{"b->a v6", b, "2001:db8::1"},
		{"a loopback", a, "127.0.0.1"},
	} {
		if err := tc.from.Ping(tc.to, 2); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// Traffic stays in the lab: a has no route to anything else.
	if err := a.Ping("198.51.100.1", 1); err == nil {
		t.Error("ping 198.51.100.1 from a succeeded, want no route")
	}
}

func TestEcho(t *testing.T) {
	_, a, b := pair(t)
	for _, tc := range []struct {
		name   string
		server string
		want   netip.Addr
	}{
		{"v4", "192.0.2.2:7000", netip.MustParseAddr("192.0.2.1")},
		{"v6", "[2001:db8::2]:7000", netip.MustParseAddr("2001:db8::1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := b.Echo(t, tc.server)
			if e.Addr().String() != tc.server {
				t.Errorf("Addr() = %v, want %v", e.Addr(), tc.server)
			}
			tcpPeer, err := a.TCPEcho(tc.server)
			if err != nil {
				t.Fatal(err)
			}
			udpPeer, err := a.UDPEcho(tc.server)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []netip.AddrPort{tcpPeer, udpPeer} {
				if p.Addr() != tc.want || p.Port() == 0 {
					t.Errorf("peer seen by server = %v, want %v:<port>", p, tc.want)
				}
			}
			if got := e.Peers(); len(got) != 2 || got[0] != tcpPeer || got[1] != udpPeer {
				t.Errorf("Peers() = %v, want [%v %v]", got, tcpPeer, udpPeer)
			}
		})
	}
}

func TestRouter(t *testing.T) {
	l := New(t)
	a, r, b := l.NS("a"), l.NS("r"), l.NS("b")
	aIf, raIf := l.Link(a, "192.0.2.1/24", r, "192.0.2.254/24")
	rbIf, bIf := l.Link(r, "198.51.100.254/24", b, "198.51.100.1/24")
	for _, x := range []struct {
		ns     *NS
		ifname string
		cidr   string
	}{
		{a, aIf, "2001:db8:a::1/64"}, {r, raIf, "2001:db8:a::ff/64"},
		{r, rbIf, "2001:db8:b::ff/64"}, {b, bIf, "2001:db8:b::1/64"},
	} {
		if err := x.ns.AddAddr(x.ifname, x.cidr); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range [][2]string{{"net.ipv4.ip_forward", "1"}, {"net.ipv6.conf.all.forwarding", "1"}} {
		if err := r.Sysctl(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, rt := range []struct {
		ns   *NS
		args []string
	}{
		{a, []string{"add", "default", "via", "192.0.2.254"}},
		{b, []string{"add", "default", "via", "198.51.100.254"}},
		{a, []string{"add", "default", "via", "2001:db8:a::ff"}},
		{b, []string{"add", "default", "via", "2001:db8:b::ff"}},
	} {
		if err := rt.ns.Route(rt.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Ping("198.51.100.1", 2); err != nil {
		t.Error(err)
	}
	if err := a.Ping("2001:db8:b::1", 2); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct{ server, want string }{
		{"198.51.100.1:7001", "192.0.2.1"},
		{"[2001:db8:b::1]:7001", "2001:db8:a::1"},
	} {
		b.Echo(t, tc.server)
		for _, echo := range []func(string) (netip.AddrPort, error){a.TCPEcho, a.UDPEcho} {
			p, err := echo(tc.server)
			if err != nil {
				t.Error(err)
				continue
			}
			if p.Addr() != netip.MustParseAddr(tc.want) {
				t.Errorf("%s saw %v, want %s", tc.server, p, tc.want)
			}
		}
	}
}

func TestSysctlIsolated(t *testing.T) {
	l := New(t)
	n := l.NS("n")
	const key = "net.ipv4.ip_forward"
	root, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if strings.TrimSpace(string(root)) == "1" {
		want = "0"
	}
	if err := n.Sysctl(key, want); err != nil {
		t.Fatal(err)
	}
	if got, err := n.ReadSysctl(key); err != nil || got != want {
		t.Errorf("ReadSysctl = %q, %v; want %q", got, err, want)
	}
	if out := n.MustExec(t, "cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(out) != want {
		t.Errorf("cat in netns = %q, want %q", out, want)
	}
	if after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(after) != string(root) {
		t.Errorf("root ip_forward changed: %q -> %q", root, after)
	}
	for _, bad := range []string{"", "..", "net/../../etc/passwd"} {
		if err := n.Sysctl(bad, "1"); err == nil {
			t.Errorf("Sysctl(%q) succeeded", bad)
		}
	}
}

func TestDo(t *testing.T) {
	_, a, _ := pair(t)
	var names []string
	if err := a.Do(func() error {
		ifs, err := net.Interfaces()
		for _, ifi := range ifs {
			names = append(names, ifi.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "lo" {
		t.Errorf("interfaces in a = %v, want [lo <veth>]", names)
	}
	want := errors.New("boom")
	if err := a.Do(func() error { return want }); err != want {
		t.Errorf("Do error = %v, want %v", err, want)
	}
	func() {
		defer func() {
			if recover() != "panic in ns" {
				t.Error("panic in fn not propagated")
			}
		}()
		a.Do(func() error { panic("panic in ns") })
	}()
	// The calling thread never leaves the root namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	init, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if self != init {
		t.Errorf("test thread in %s, process in %s", self, init)
	}
	if _, err := a.Listen("tcp", "localhost:0"); err == nil {
		t.Error("Listen with a host name succeeded, want error")
	}
}

func TestEnterAndHandle(t *testing.T) {
	_, a, _ := pair(t)
	want := a.Handle().UniqueId()
	root, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("entered", func(t *testing.T) {
		// Registered first, so it runs after Enter's cleanup, on the same goroutine.
		t.Cleanup(func() {
			if self, err := os.Readlink("/proc/thread-self/ns/net"); err != nil || self != root {
				t.Errorf("after Enter's cleanup the thread is in %s, %v; want %s", self, err, root)
			}
		})
		a.Enter(t)
		cur, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer cur.Close()
		if got := cur.UniqueId(); got != want {
			t.Fatalf("after Enter the thread is in %s, want %s", got, want)
		}
		if ifs, err := net.Interfaces(); err != nil || len(ifs) != 2 {
			t.Fatalf("interfaces after Enter = %v, %v; want lo and a's veth", ifs, err)
		}
	})
}

func TestListenDial(t *testing.T) {
	_, a, b := pair(t)
	ln, err := b.Listen("tcp", "192.0.2.2:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c.RemoteAddr()
		c.Close()
	}()
	c, err := a.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := <-accepted; got == nil || got.(*net.TCPAddr).IP.String() != "192.0.2.1" {
		t.Errorf("accepted from %v, want 192.0.2.1", got)
	}
}

func TestExec(t *testing.T) {
	l := New(t)
	n := l.NS("n")
	if out := n.MustExec(t, "ip", "-o", "link", "show", "lo"); !strings.Contains(out, "UP") {
		t.Errorf("loopback not up: %s", out)
	}
	if _, err := n.Exec("false"); err == nil || !strings.Contains(err.Error(), n.Name()) {
		t.Errorf("Exec(false) error = %v, want one naming %s", err, n.Name())
	}
	l.SetExecTimeout(300 * time.Millisecond)
	start := time.Now()
	if _, err := n.Exec("sh", "-c", "sleep 30 & sleep 30"); err == nil {
		t.Error("Exec(sleep 30) succeeded, want timeout")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Exec timeout took %v", d)
	}
}

// needRoot skips tests that inspect a sub-lab from outside it.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func TestProc(t *testing.T) {
	needRoot(t)
	var pids []int
	var procs []*Proc
	var prefix string
	t.Run("lab", func(t *testing.T) {
		l := New(t)
		l.SetStopGrace(300 * time.Millisecond)
		prefix = l.Prefix()
		n := l.NS("n")
		// A child in the background and a leader that ignores SIGTERM.
		p := n.Start(t, "sh", "-c", `trap "" TERM; sleep 1000 & echo child=$!; echo err >&2; wait`)
		if err := p.WaitFor("err", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		out := p.Output()
		child, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(strings.TrimPrefix(out, "child="), "\n", 2)[0]))
		if err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		// A process that exits cleanly on SIGTERM, stopped early.
		q := n.Start(t, "sleep", "1000")
		if err := q.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if !q.Exited() {
			t.Error("process running after Stop")
		}
		// A process the test does not know about, left in the namespace.
		n.MustExec(t, "sh", "-c", "sleep 1000 >/dev/null 2>&1 &")
		// An exit status is reported by Wait.
		r := n.Start(t, "sh", "-c", "exit 3")
		if err := r.Wait(); err == nil {
			t.Error("Wait = nil, want exit status 3")
		}
		pids = []int{p.PID(), child, q.PID()}
		procs = []*Proc{p, q, r}
	})
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still running after cleanup", pid)
		}
	}
	for _, p := range procs {
		if !p.Exited() {
			t.Errorf("%v not waited for", p)
		}
	}
	CheckClean(t, prefix)
}

// alive reports whether pid is a process that has not exited; zombies
// reparented to an init that does not reap them count as exited.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesized command name, which may contain spaces.
	i := strings.LastIndexByte(string(st), ')')
	return i < 0 || i+2 >= len(st) || st[i+2] != 'Z'
}

func TestCleanup(t *testing.T) {
	needRoot(t)
	goroutines := runtime.NumGoroutine()
	var prefix string
	var nsPaths []string
	t.Run("lab", func(t *testing.T) {
		l, a, b := pair(t)
		prefix = l.Prefix()
		nsPaths = []string{filepath.Join(netnsDir, a.Name()), filepath.Join(netnsDir, b.Name())}
		b.Echo(t, "192.0.2.2:7002")
		if _, err := a.TCPEcho("192.0.2.2:7002"); err != nil {
			t.Error(err)
		}
		if _, err := b.ListenPacket("udp", "192.0.2.2:0"); err != nil { // left open on purpose
			t.Error(err)
		}
		b.Start(t, "sleep", "1000")
		if left, err := leftovers(prefix); err != nil || len(left) != 2 {
			t.Errorf("during test: leftovers = %v, %v; want the 2 namespaces", left, err)
		}
	})
	if prefix == "" {
		t.Fatal("sub-lab did not run")
	}
	CheckClean(t, prefix)
	for _, p := range nsPaths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want gone", p, err)
		}
	}
	// Every goroutine the lab started has been waited for.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("goroutines: %d before, %d after", goroutines, n)
	}
}

func TestParallelLabs(t *testing.T) {
	for i := range 4 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			_, a, _ := pair(t) // same names in every lab
			if err := a.Ping("192.0.2.2", 1); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"router-1", true}, {"site_b", true},
		{"", false}, {"a/b", false}, {"-a", false}, {"a b", false}, {strings.Repeat("x", 33), false},
	} {
		if got := validNSName.MatchString(tc.name); got != tc.ok {
			t.Errorf("valid(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
	for _, tc := range []struct {
		line string
		want string
	}{
		{"peer=192.0.2.1:5000\n", "192.0.2.1:5000"},
		{"peer=[2001:db8::1]:5000\n", "[2001:db8::1]:5000"},
		{"peer=192.0.2.1\n", ""},
		{"hello\n", ""},
	} {
		got, err := parsePeerLine(tc.line)
		if (err == nil) != (tc.want != "") || (err == nil && got.String() != tc.want) {
			t.Errorf("parsePeerLine(%q) = %v, %v; want %q", tc.line, got, err, tc.want)
		}
	}
}
