package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

const (
	// DefaultExecTimeout bounds every command run by NS.Exec unless changed with Lab.SetExecTimeout.
	DefaultExecTimeout = 30 * time.Second
	// DefaultStopGrace is how long a Proc gets between SIGTERM and SIGKILL unless changed with Lab.SetStopGrace.
	DefaultStopGrace = 5 * time.Second
	// EchoTimeout bounds each NS.TCPEcho and NS.UDPEcho call.
	EchoTimeout = 2 * time.Second
	// DialTimeout bounds the connection setup of NS.Dial.
	DialTimeout = 5 * time.Second
)

// netnsDir is where iproute2 keeps named namespaces.
const netnsDir = "/run/netns"

var (
	// prefixMu guards prefixes, the prefixes held by live Labs of this process.
	prefixMu sync.Mutex
	prefixes = map[string]bool{}

	// netnsMu serializes `ip netns add/del` within this process: iproute2
	// sets up the /run/netns mount on first use, and that setup is racy.
	netnsMu sync.Mutex

	validNSName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)
)

// Lab owns the namespaces, veth pairs, processes and sockets of one test.
type Lab struct {
	t      testing.TB
	prefix string
	ipPath string

	mu          sync.Mutex
	execTimeout time.Duration
	stopGrace   time.Duration
	closed      bool
	names       map[string]bool
	nss         []*NS
	links       int
	procs       []*Proc
	echos       []*Echo
	closers     []io.Closer
}

// New returns an empty Lab torn down in t.Cleanup; it skips the test unless running as root.
func New(t testing.TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lab: network namespace tests need root")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatalf("lab: iproute2 not installed: %v", err)
	}
	prefix, err := newPrefix()
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{
		t:           t,
		prefix:      prefix,
		ipPath:      ipPath,
		execTimeout: DefaultExecTimeout,
		stopGrace:   DefaultStopGrace,
		names:       map[string]bool{},
	}
	t.Cleanup(func() {
		l.teardown()
		CheckClean(t, prefix)
		prefixMu.Lock()
		delete(prefixes, prefix)
		prefixMu.Unlock()
	})
	return l
}

// newPrefix picks "sy" plus 4 hex digits that no live Lab, namespace or root-namespace link uses.
func newPrefix() (string, error) {
	prefixMu.Lock()
	defer prefixMu.Unlock()
	for range 32 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("lab: random prefix: %w", err)
		}
		p := "sy" + hex.EncodeToString(b[:])
		if prefixes[p] {
			continue
		}
		left, err := leftovers(p)
		if err != nil {
			return "", err
		}
		if len(left) > 0 {
			continue
		}
		prefixes[p] = true
		return p, nil
	}
	return "", errors.New("lab: no free name prefix after 32 tries")
}

// Prefix returns the Lab's name prefix, for CheckClean.
func (l *Lab) Prefix() string { return l.prefix }

// SetExecTimeout changes the bound on each NS.Exec, NS.Ping and setup command.
func (l *Lab) SetExecTimeout(d time.Duration) {
	l.mu.Lock()
	l.execTimeout = d
	l.mu.Unlock()
}

// SetStopGrace changes the time a Proc started afterwards gets between SIGTERM and SIGKILL.
func (l *Lab) SetStopGrace(d time.Duration) {
	l.mu.Lock()
	l.stopGrace = d
	l.mu.Unlock()
}

func (l *Lab) timeouts() (exec, grace time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.execTimeout, l.stopGrace
}

// NS creates a namespace named Prefix()+"-"+name with loopback up and IPv6 DAD off.
func (l *Lab) NS(name string) *NS {
	l.t.Helper()
	n, err := l.newNS(name)
	if err != nil {
		l.t.Fatal(err)
	}
	return n
}

func (l *Lab) newNS(name string) (*NS, error) {
	if !validNSName.MatchString(name) {
		return nil, fmt.Errorf("lab: namespace name %q: want 1-32 of [A-Za-z0-9_-]", name)
	}
	full := l.prefix + "-" + name
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return nil, fmt.Errorf("lab: create netns %s: lab already cleaned up", full)
	case l.names[name]:
		l.mu.Unlock()
		return nil, fmt.Errorf("lab: create netns %s: name already used in this lab", full)
	}
	l.names[name] = true
	l.mu.Unlock()

	netnsMu.Lock()
	err := l.ip("netns", "add", full)
	netnsMu.Unlock()
	if err != nil {
		return nil, err
	}
	n := &NS{lab: l, name: full}
	// Track it at once so that teardown removes a half-built namespace.
	l.mu.Lock()
	l.nss = append(l.nss, n)
	l.mu.Unlock()

	h, err := netns.GetFromName(full)
	if err != nil {
		return nil, fmt.Errorf("lab: open netns %s: %w", full, err)
	}
	n.handle = h
	if err := l.ip("-n", full, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
		// Interfaces created later inherit "default"; addresses are usable at once.
		for _, k := range []string{"net/ipv6/conf/all/accept_dad", "net/ipv6/conf/default/accept_dad"} {
			if err := n.Sysctl(k, "0"); err != nil {
				return nil, err
			}
		}
	}
	return n, nil
}

// Link joins a and b with a veth pair, adds aAddr and bAddr (CIDR, either may be empty), sets both ends up and returns their names.
func (l *Lab) Link(a *NS, aAddr string, b *NS, bAddr string) (aIf, bIf string) {
	l.t.Helper()
	aIf, bIf, err := l.link(a, aAddr, b, bAddr)
	if err != nil {
		l.t.Fatal(err)
	}
	return aIf, bIf
}

func (l *Lab) link(a *NS, aAddr string, b *NS, bAddr string) (aIf, bIf string, err error) {
	if a == nil || b == nil || a.lab != l || b.lab != l {
		return "", "", errors.New("lab: link: both namespaces must belong to this lab")
	}
	for _, c := range []string{aAddr, bAddr} {
		if c == "" {
			continue
		}
		if _, err := netip.ParsePrefix(c); err != nil {
			return "", "", fmt.Errorf("lab: link %s-%s: address: %w", a.name, b.name, err)
		}
	}
	l.mu.Lock()
	l.links++
	i := l.links
	l.mu.Unlock()
	aIf = fmt.Sprintf("%s-%da", l.prefix, i)
	bIf = fmt.Sprintf("%s-%db", l.prefix, i)
	// Both ends are created directly in their namespaces, never in the root one.
	if err := l.ip("link", "add", "name", aIf, "netns", a.name, "type", "veth", "peer", "name", bIf, "netns", b.name); err != nil {
		return "", "", err
	}
	for _, e := range []struct {
		ns        *NS
		ifname, a string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if e.a != "" {
			if err := e.ns.AddAddr(e.ifname, e.a); err != nil {
				return "", "", err
			}
		}
		if err := l.ip("-n", e.ns.name, "link", "set", e.ifname, "up"); err != nil {
			return "", "", err
		}
	}
	return aIf, bIf, nil
}

// ip runs the ip command in the root namespace, bounded by the exec timeout.
func (l *Lab) ip(args ...string) error {
	timeout, _ := l.timeouts()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := runCmd(ctx, l.ipPath, args...)
	if err != nil {
		return fmt.Errorf("lab: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out))
	}
	return nil
}

// track registers c to be closed at teardown; it reports false when the Lab is already torn down.
func (l *Lab) track(c io.Closer) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	switch c := c.(type) {
	case *Proc:
		l.procs = append(l.procs, c)
	case *Echo:
		l.echos = append(l.echos, c)
	default:
		l.closers = append(l.closers, c)
	}
	return true
}

// teardown stops and removes everything the Lab created, in dependency order.
func (l *Lab) teardown() {
	l.mu.Lock()
	l.closed = true
	echos, closers, procs, nss := l.echos, l.closers, l.procs, l.nss
	l.mu.Unlock()

	for _, e := range echos {
		if err := e.Close(); err != nil {
			l.t.Errorf("lab: teardown: %v", err)
		}
	}
	for _, c := range closers {
		c.Close() // Sockets the test may have closed already; errors say only that.
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() {
			if did, err := p.stop(); did && err != nil {
				l.t.Logf("lab: teardown: %v", err)
			}
		})
	}
	wg.Wait()
	for i := len(nss) - 1; i >= 0; i-- {
		if err := l.removeNS(nss[i]); err != nil {
			l.t.Errorf("lab: teardown: %v", err)
		}
	}
	// Nothing is created in the root namespace, but a test may move a link there.
	if ifs, err := net.Interfaces(); err == nil {
		for _, ifi := range ifs {
			if strings.HasPrefix(ifi.Name, l.prefix+"-") {
				if err := l.ip("link", "del", ifi.Name); err != nil {
					l.t.Errorf("lab: teardown: %v", err)
				}
			}
		}
	}
}

// removeNS kills processes left in n, closes its handle and deletes it, which also destroys its veths.
func (l *Lab) removeNS(n *NS) error {
	path := filepath.Join(netnsDir, n.name)
	killed, err := killNetnsProcs(path)
	if len(killed) > 0 {
		l.t.Logf("lab: teardown: killed processes left in netns %s: %v", n.name, killed)
	}
	if n.handle.IsOpen() {
		if cerr := n.handle.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("lab: close netns %s: %w", n.name, cerr))
		}
	}
	netnsMu.Lock()
	derr := l.ip("netns", "del", n.name)
	netnsMu.Unlock()
	return errors.Join(err, derr)
}

// killNetnsProcs SIGKILLs every other process whose network namespace is the one at path and waits until they are gone.
func killNetnsProcs(path string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(path, &want); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("lab: stat netns %s: %w", path, err)
	}
	var killed []int
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := netnsPIDs(want)
		if err != nil || len(pids) == 0 {
			return killed, err
		}
		if time.Now().After(deadline) {
			return killed, fmt.Errorf("lab: processes %v still in netns %s 5s after SIGKILL", pids, path)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil && !containsInt(killed, pid) {
				killed = append(killed, pid)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// netnsPIDs lists the processes, other than this one, whose network namespace has the inode in want.
func netnsPIDs(want syscall.Stat_t) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("lab: list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st syscall.Stat_t
		// Fails for zombies and exited processes, which hold no namespace.
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// CheckClean reports, as test errors, every namespace in /run/netns and every root-namespace link whose name starts with prefix+"-".
func CheckClean(t testing.TB, prefix string) {
	t.Helper()
	left, err := leftovers(prefix)
	if err != nil {
		t.Error(err)
	}
	for _, s := range left {
		t.Errorf("lab: %s left behind", s)
	}
}

// leftovers lists the namespaces and root-namespace links named with prefix.
func leftovers(prefix string) ([]string, error) {
	var left []string
	ents, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab: list %s: %w", netnsDir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			left = append(left, "netns "+e.Name())
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("lab: list root namespace links: %w", err)
	}
	for _, ifi := range ifs {
		if strings.HasPrefix(ifi.Name, prefix+"-") {
			left = append(left, "link "+ifi.Name)
		}
	}
	return left, nil
}
