package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeRun records the commands it is given and answers busctl with busctl
// (an error when empty) and resolvectl with fail's error for a matching
// subcommand.
type fakeRun struct {
	busctl string
	fail   string // a resolvectl subcommand that fails
	ran    []string
}

func (f *fakeRun) run(_ context.Context, name string, args ...string) (string, error) {
	cmd := strings.Join(append([]string{name}, args...), " ")
	if name == "busctl" {
		if f.busctl == "" {
			return "", errors.New("busctl: no system bus")
		}
		return f.busctl, nil
	}
	f.ran = append(f.ran, cmd)
	if len(args) > 0 && args[0] == f.fail {
		return "Failed", fmt.Errorf("%s: exit status 1", cmd)
	}
	return "", nil
}

// hostDirs makes a state directory and a directory for resolv.conf, and
// returns a HostConfig using them (with the fake runner).
func hostDirs(t *testing.T, f *fakeRun) HostConfig {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"state", "etc", "run"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return HostConfig{
		Iface: "sy1", Overlay: netip.MustParseAddr("192.0.2.7"),
		StateDir: filepath.Join(dir, "state"), ResolvConf: filepath.Join(dir, "etc", "resolv.conf"),
		ResolvedDir: filepath.Join(dir, "run"), Run: f.run,
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const original = "# from DHCP\nnameserver 198.51.100.53\nnameserver 2001:db8::53\nsearch corp.example lan\noptions edns0 trust-ad\n"

var corp = Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{ns1}}}, Zone: "sy.internal", Server: netip.MustParseAddr("192.0.2.1")}

func TestResolvConfInstallRestore(t *testing.T) {
	ctx := context.Background()
	f := &fakeRun{busctl: "b false\n"}
	hc := hostDirs(t, f)
	write(t, hc.ResolvConf, original)
	h, err := OpenHost(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	if h.Mode() != "resolv.conf" || h.Listen() != netip.MustParseAddrPort("127.2.0.53:53") {
		t.Fatalf("mode %s on %s, want resolv.conf on 127.2.0.53:53", h.Mode(), h.Listen())
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("198.51.100.53:53"), netip.MustParseAddrPort("[2001:db8::53]:53")}
	if got := h.Upstreams(); !slices.Equal(got, want) {
		t.Errorf("upstreams %v, want %v", got, want)
	}
	if err := h.Set(ctx, corp); err != nil {
		t.Fatal(err)
	}
	got := read(t, hc.ResolvConf)
	servers, keep := parseResolvConf([]byte(got), netip.Addr{})
	if !slices.Equal(servers, []netip.AddrPort{netip.MustParseAddrPort("127.2.0.53:53")}) ||
		!slices.Equal(keep, []string{"search corp.example lan", "options edns0 trust-ad"}) || !strings.HasPrefix(got, resolvConfMarker) {
		t.Errorf("installed resolv.conf:\n%s", got)
	}
	if err := h.Set(ctx, Config{}); err != nil { // new rules: resolv.conf stays
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(t, hc.ResolvConf); got != original {
		t.Errorf("restored resolv.conf:\n%s\nwant:\n%s", got, original)
	}
	if len(f.ran) != 0 {
		t.Errorf("resolvectl ran without resolved: %v", f.ran)
	}
	if left, _ := os.ReadDir(hc.StateDir); len(left) != 0 {
		t.Errorf("state left after a clean stop: %v", left)
	}
}

func TestResolvConfCrashRecovery(t *testing.T) {
	ctx := context.Background()
	f := &fakeRun{}
	hc := hostDirs(t, f)
	write(t, hc.ResolvConf, original)
	if err := os.Chmod(hc.ResolvConf, 0o640); err != nil {
		t.Fatal(err)
	}
	h, err := OpenHost(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Set(ctx, corp); err != nil {
		t.Fatal(err)
	}
	// The client dies here; the next start puts the original back before
	// it reads the host's resolvers.
	h2, err := OpenHost(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, hc.ResolvConf); got != original {
		t.Errorf("after a crash, resolv.conf:\n%s", got)
	}
	if fi, _ := os.Stat(hc.ResolvConf); fi.Mode().Perm() != 0o640 {
		t.Errorf("restored mode %v, want 0640", fi.Mode().Perm())
	}
	if up := h2.Upstreams(); len(up) != 2 || up[0] != netip.MustParseAddrPort("198.51.100.53:53") {
		t.Errorf("upstreams after a crash %v, want the original's", up)
	}
	if err := h2.Set(ctx, corp); err != nil {
		t.Fatal(err)
	}
	if err := h2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(t, hc.ResolvConf); got != original {
		t.Errorf("after the second run, resolv.conf:\n%s", got)
	}
}

func TestResolvConfSymlink(t *testing.T) {
	ctx := context.Background()
	f := &fakeRun{}
	hc := hostDirs(t, f)
	target := filepath.Join(filepath.Dir(hc.ResolvConf), "..", "run", "other-resolv.conf")
	write(t, target, original)
	if err := os.Symlink("../run/other-resolv.conf", hc.ResolvConf); err != nil {
		t.Fatal(err)
	}
	h, err := OpenHost(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	if up := h.Upstreams(); len(up) != 2 {
		t.Errorf("upstreams %v, want the link target's two", up)
	}
	if err := h.Set(ctx, corp); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(hc.ResolvConf); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Fatalf("installed resolv.conf is still a link (%v)", err)
	}
	if !strings.Contains(read(t, hc.ResolvConf), "nameserver 127.2.0.53\nsearch corp.example lan\n") {
		t.Errorf("installed resolv.conf:\n%s", read(t, hc.ResolvConf))
	}
	if got := read(t, target); got != original {
		t.Errorf("the link's target was changed:\n%s", got)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if link, err := os.Readlink(hc.ResolvConf); err != nil || link != "../run/other-resolv.conf" {
		t.Errorf("restored resolv.conf: link %q, %v; want the link back", link, err)
	}
	// And after a crash.
	h, _ = OpenHost(ctx, hc)
	h.Set(ctx, corp)
	if _, err := OpenHost(ctx, hc); err != nil {
		t.Fatal(err)
	}
	if link, err := os.Readlink(hc.ResolvConf); err != nil || link != "../run/other-resolv.conf" {
		t.Errorf("after a crash: link %q, %v; want the link back", link, err)
	}
}

func TestResolvConfChangedByOthers(t *testing.T) {
	ctx := context.Background()
	hc := hostDirs(t, &fakeRun{})
	write(t, hc.ResolvConf, original)
	h, _ := OpenHost(ctx, hc)
	if err := h.Set(ctx, corp); err != nil {
		t.Fatal(err)
	}
	const dhcp = "nameserver 203.0.113.53\n"
	write(t, hc.ResolvConf, dhcp)
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(t, hc.ResolvConf); got != dhcp {
		t.Errorf("someone else's resolv.conf was overwritten with:\n%s", got)
	}
	if left, _ := os.ReadDir(hc.StateDir); len(left) != 0 {
		t.Errorf("state left: %v", left)
	}
}

func TestResolvConfNone(t *testing.T) {
	ctx := context.Background()
	hc := hostDirs(t, &fakeRun{})
	h, err := OpenHost(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	if up := h.Upstreams(); !slices.Equal(up, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}) {
		t.Errorf("upstreams without resolv.conf %v, want the C library's 127.0.0.1", up)
	}
	h.Set(ctx, corp)
	if !strings.HasPrefix(read(t, hc.ResolvConf), resolvConfMarker) {
		t.Fatal("stub not installed")
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(hc.ResolvConf); !os.IsNotExist(err) {
		t.Errorf("resolv.conf left where there was none (%v)", err)
	}
}

func TestDetectResolved(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, busctl string
		link         bool // resolv.conf links to resolved's stub file
		want         string
	}{
		{"name owned", "b true\n", false, "resolved"},
		{"name not owned", "b false\n", true, "resolv.conf"},
		{"no bus, stub file in use", "", true, "resolved"},
		{"no bus, own file", "", false, "resolv.conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := hostDirs(t, &fakeRun{busctl: tc.busctl})
			write(t, filepath.Join(hc.ResolvedDir, "stub-resolv.conf"), "nameserver 127.0.0.53\n")
			write(t, filepath.Join(hc.ResolvedDir, "resolv.conf"), "nameserver 198.51.100.53\nnameserver 192.0.2.7\n")
			if tc.link {
				os.Symlink(filepath.Join(hc.ResolvedDir, "stub-resolv.conf"), hc.ResolvConf)
			} else {
				write(t, hc.ResolvConf, original)
			}
			h, err := OpenHost(ctx, hc)
			if err != nil {
				t.Fatal(err)
			}
			if h.Mode() != tc.want {
				t.Errorf("mode %s, want %s", h.Mode(), tc.want)
			}
		})
	}
}

// TestHostMode: HostConfig.Mode forces an integration whatever the host
// runs; an unknown one is refused.
func TestHostMode(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ mode, busctl, want string }{
		{"resolv.conf", "b true\n", "resolv.conf"},
		{"resolved", "", "resolved"},
	} {
		hc := hostDirs(t, &fakeRun{busctl: tc.busctl})
		write(t, hc.ResolvConf, original)
		hc.Mode = tc.mode
		h, err := OpenHost(ctx, hc)
		if err != nil || h.Mode() != tc.want {
			t.Errorf("Mode %q with busctl %q: %v, %v; want %s", tc.mode, tc.busctl, h, err, tc.want)
		}
	}
	hc := hostDirs(t, &fakeRun{})
	hc.Mode = "networkmanager"
	if _, err := OpenHost(ctx, hc); err == nil || !strings.Contains(err.Error(), "networkmanager") {
		t.Errorf("an unknown mode: %v", err)
	}
}

func TestResolvectl(t *testing.T) {
	ctx := context.Background()
	f := &fakeRun{busctl: "b true\n"}
	hc := hostDirs(t, f)
	write(t, filepath.Join(hc.ResolvedDir, "resolv.conf"), "nameserver 198.51.100.53\nnameserver 192.0.2.7\n")
	write(t, hc.ResolvConf, original)
	h, err := OpenHost(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	if h.Listen() != netip.MustParseAddrPort("192.0.2.7:53") {
		t.Errorf("listen %s, want the overlay address's port 53", h.Listen())
	}
	if up := h.Upstreams(); !slices.Equal(up, []netip.AddrPort{netip.MustParseAddrPort("198.51.100.53:53")}) {
		t.Errorf("upstreams %v, want resolved's without the stub", up)
	}
	step := func(what string, fn func() error, want ...string) {
		t.Helper()
		f.ran = nil
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !slices.Equal(f.ran, want) {
			t.Errorf("%s ran:\n%s\nwant:\n%s", what, strings.Join(f.ran, "\n"), strings.Join(want, "\n"))
		}
	}
	step("set", func() error { return h.Set(ctx, corp) },
		"resolvectl dns sy1 192.0.2.7",
		"resolvectl domain sy1 ~corp.example ~sy.internal",
		"resolvectl default-route sy1 false")
	watched := corp
	watched.Watched = []string{"apps.example"} // a split tunnel domain: asked of the stub too
	step("set with a watched domain", func() error { return h.Set(ctx, watched) },
		"resolvectl dns sy1 192.0.2.7",
		"resolvectl domain sy1 ~corp.example ~sy.internal ~apps.example",
		"resolvectl default-route sy1 false")
	step("no rules", func() error { return h.Set(ctx, Config{}) }, "resolvectl revert sy1")
	step("close after revert", func() error { return h.Close(ctx) })
	step("set again", func() error { return h.Set(ctx, Config{Zone: "sy.internal", Server: netip.MustParseAddr("192.0.2.1")}) },
		"resolvectl dns sy1 192.0.2.7",
		"resolvectl domain sy1 ~sy.internal",
		"resolvectl default-route sy1 false")
	step("close", func() error { return h.Close(ctx) }, "resolvectl revert sy1")
	if got := read(t, hc.ResolvConf); got != original {
		t.Errorf("resolv.conf changed with resolved:\n%s", got)
	}
	f.fail = "domain"
	if err := h.Set(ctx, corp); err == nil || !strings.Contains(err.Error(), "routing domains of sy1") {
		t.Errorf("failing resolvectl domain: %v", err)
	}
	f.ran = nil
	if err := h.Close(ctx); err != nil || !slices.Equal(f.ran, []string{"resolvectl revert sy1"}) {
		t.Errorf("close after a half set: %v, ran %v; want a revert", err, f.ran)
	}
}
