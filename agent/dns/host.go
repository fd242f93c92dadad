package dns

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Host is the host's side of the client's DNS: where the stub must listen,
// the resolvers the host used before the client changed anything, and the
// changes that make the host ask the stub.
type Host interface {
	// Mode names the integration: "resolved" or "resolv.conf".
	Mode() string
	// Listen is the address the stub must answer on.
	Listen() netip.AddrPort
	// Upstreams are the host's usual resolvers (StubConfig.HostServers).
	Upstreams() []netip.AddrPort
	// Set makes the host ask the stub for c's domains (every name, with
	// resolv.conf); the stub must be listening. Set again replaces them.
	Set(ctx context.Context, c Config) error
	// Close undoes everything Set did.
	Close(ctx context.Context) error
}

// Runner runs a command and returns its combined output (the exec seam:
// resolvectl and busctl).
type Runner func(ctx context.Context, name string, args ...string) (string, error)

// HostConfig says how to meet the host.
type HostConfig struct {
	// Iface is the client's interface (resolved's link).
	Iface string
	// Overlay is the client's overlay address: the stub's with resolved,
	// which asks per-link servers over that link.
	Overlay netip.Addr
	// StateDir keeps the original resolv.conf while the client runs.
	StateDir string
	// ResolvConf is the resolver configuration to rewrite; empty means
	// /etc/resolv.conf.
	ResolvConf string
	// ResolvedDir is systemd-resolved's runtime directory; empty means
	// /run/systemd/resolve.
	ResolvedDir string
	// Loopback is the stub's address without resolved; invalid means
	// DefaultLoopback.
	Loopback netip.Addr
	// Mode forces an integration: "resolved" or "resolv.conf"; empty
	// means resolved when it runs, else resolv.conf.
	Mode string
	// Run runs resolvectl and busctl; nil means os/exec.
	Run Runner
	// Log is the logger; nil discards.
	Log *slog.Logger
}

// DefaultLoopback is the stub's address when the client rewrites
// resolv.conf. Linux delivers all of 127.0.0.0/8 on lo without an address
// being added; this one is clear of systemd-resolved's 127.0.0.53 (stub)
// and 127.0.0.54 (proxy stub), Debian's 127.0.1.1 (the host name in
// /etc/hosts) and Cloudflare WARP's 127.0.2.2 and 127.0.2.3.
var DefaultLoopback = netip.MustParseAddr("127.2.0.53")

// OpenHost chooses the integration: resolved when it runs, else
// resolv.conf (restoring first what a crashed run left in it). It changes
// nothing else until Set.
func OpenHost(ctx context.Context, hc HostConfig) (Host, error) {
	if hc.ResolvConf == "" {
		hc.ResolvConf = "/etc/resolv.conf"
	}
	if hc.ResolvedDir == "" {
		hc.ResolvedDir = "/run/systemd/resolve"
	}
	if !hc.Loopback.IsValid() {
		hc.Loopback = DefaultLoopback
	}
	if hc.Run == nil {
		hc.Run = runCommand
	}
	if hc.Log == nil {
		hc.Log = slog.New(slog.DiscardHandler)
	}
	hc.Log = hc.Log.With("component", "dns")
	switch hc.Mode {
	case "resolved":
		return openResolved(hc)
	case "resolv.conf":
		return openResolvConf(hc)
	case "":
	default:
		return nil, fmt.Errorf("dns: host integration %q is neither resolved nor resolv.conf", hc.Mode)
	}
	if resolvedRunning(ctx, hc) {
		return openResolved(hc)
	}
	return openResolvConf(hc)
}

// runCommand is the default Runner.
func runCommand(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// resolvedRunning reports whether systemd-resolved runs: its D-Bus name
// has an owner, or (without busctl or a system bus) resolv.conf is
// resolved's file.
func resolvedRunning(ctx context.Context, hc HostConfig) bool {
	out, err := hc.Run(ctx, "busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
		"org.freedesktop.DBus", "NameHasOwner", "s", "org.freedesktop.resolve1")
	if err == nil {
		return strings.TrimSpace(out) == "b true"
	}
	target, err := filepath.EvalSymlinks(hc.ResolvConf)
	if err != nil {
		return false
	}
	for _, f := range []string{"stub-resolv.conf", "resolv.conf"} {
		if t, err := filepath.EvalSymlinks(filepath.Join(hc.ResolvedDir, f)); err == nil && t == target {
			return true
		}
	}
	return false
}

// parseResolvConf returns the nameservers (port 53) of a resolv.conf and
// its other lines that a stub's resolv.conf keeps (search, domain,
// options), skipping the nameserver skip.
func parseResolvConf(data []byte, skip netip.Addr) (servers []netip.AddrPort, keep []string) {
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				continue
			}
			a, err := netip.ParseAddr(f[1])
			if err != nil || a == skip {
				continue
			}
			servers = append(servers, netip.AddrPortFrom(a, 53))
		case "search", "domain", "options":
			keep = append(keep, strings.Join(f, " "))
		}
	}
	return servers, keep
}

// readResolvConf is parseResolvConf of a file; a missing file has nothing.
func readResolvConf(path string, skip netip.Addr) ([]netip.AddrPort, []string, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	s, k := parseResolvConf(data, skip)
	return s, k, nil
}
