package dns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/internal/atomicfile"
)

// Files of the state directory that keep the original resolv.conf while
// the stub is installed: its content (with its mode), or, for a symbolic
// link, its target. At most one exists.
const (
	savedFile = "resolv.conf.saved"
	linkFile  = "resolv.conf.link"
)

// resolvConfMarker opens the resolv.conf the client writes; a resolv.conf
// without it is someone else's, which the client never overwrites on
// restore.
const resolvConfMarker = "# switchyard: the client's DNS stub; the original comes back when the client stops"

// resolvConf is the integration without resolved: resolv.conf names only
// the stub (on a loopback address), keeping search, domain and options;
// its original, saved in the state directory first, comes back on Close,
// and at the next start after a crash.
type resolvConf struct {
	hc        HostConfig
	upstreams []netip.AddrPort
	mu        sync.Mutex
	installed bool
}

// openResolvConf restores what a crashed run left, then reads the host's
// resolvers from resolv.conf.
func openResolvConf(hc HostConfig) (*resolvConf, error) {
	r := &resolvConf{hc: hc}
	if err := r.restore("after a crash"); err != nil {
		return nil, err
	}
	up, _, err := readResolvConf(hc.ResolvConf, hc.Loopback)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if len(up) == 0 { // the C library's rule: no nameserver means the local one
		up = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}
	}
	r.upstreams = up
	hc.Log.Info("dns through resolv.conf", "path", hc.ResolvConf, "stub", r.Listen().String(), "host_servers", fmt.Sprint(up))
	return r, nil
}

// Mode implements Host.
func (r *resolvConf) Mode() string { return "resolv.conf" }

// Listen implements Host.
func (r *resolvConf) Listen() netip.AddrPort { return netip.AddrPortFrom(r.hc.Loopback, 53) }

// Upstreams implements Host.
func (r *resolvConf) Upstreams() []netip.AddrPort { return slices.Clone(r.upstreams) }

// Set implements Host: the first call saves resolv.conf and replaces it
// (a symbolic link with a file); the rules do not change it, so later
// calls do nothing.
func (r *resolvConf) Set(context.Context, Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.installed {
		return nil
	}
	path := r.hc.ResolvConf
	fi, err := os.Lstat(path)
	var saved, what string
	var keep []string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		what = "none"
	case err != nil:
		return fmt.Errorf("dns: install the stub in %s: %w", path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return fmt.Errorf("dns: install the stub in %s: %w", path, err)
		}
		saved, what = filepath.Join(r.hc.StateDir, linkFile), "link to "+target
		if err := atomicfile.WriteFile(saved, []byte(target), 0o600); err != nil {
			return fmt.Errorf("dns: save %s: %w", path, err)
		}
		_, keep, _ = readResolvConf(path, r.hc.Loopback) // the target's search and options, if it has any
	default:
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("dns: install the stub in %s: %w", path, err)
		}
		saved, what = filepath.Join(r.hc.StateDir, savedFile), "file"
		if err := atomicfile.WriteFile(saved, data, fi.Mode().Perm()); err != nil {
			return fmt.Errorf("dns: save %s: %w", path, err)
		}
		_, keep = parseResolvConf(data, r.hc.Loopback)
	}
	content := resolvConfMarker + " (saved: " + cmp.Or(saved, "none") + ")\n"
	content += "nameserver " + r.hc.Loopback.String() + "\n"
	for _, l := range keep {
		content += l + "\n"
	}
	if err := atomicfile.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("dns: install the stub in %s: %w", path, err)
	}
	r.installed = true
	r.hc.Log.Info("dns: resolv.conf replaced", "path", path, "nameserver", r.hc.Loopback.String(), "kept", len(keep), "original", what, "saved", saved)
	return nil
}

// Close implements Host: the original resolv.conf comes back.
func (r *resolvConf) Close(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.restore("on stop"); err != nil {
		return err
	}
	r.installed = false
	return nil
}

// restore puts the saved resolv.conf back when resolv.conf is still the
// client's (or gone), and forgets the saved copy. Someone else's
// resolv.conf is left as it is, with a warning.
func (r *resolvConf) restore(when string) error {
	path := r.hc.ResolvConf
	saved, link := filepath.Join(r.hc.StateDir, savedFile), filepath.Join(r.hc.StateDir, linkFile)
	data, errData := os.ReadFile(saved)
	target, errLink := os.ReadFile(link)
	if errors.Is(errData, fs.ErrNotExist) && errors.Is(errLink, fs.ErrNotExist) {
		// Nothing saved: there was no resolv.conf (or the state directory
		// is new); one of ours names a stub that is gone.
		return r.removeOurs(when)
	}
	for _, err := range []error{errData, errLink} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("dns: restore %s: %w", path, err)
		}
	}
	ours, err := isOurs(path)
	if err != nil {
		return fmt.Errorf("dns: restore %s: %w", path, err)
	}
	switch {
	case !ours:
		r.hc.Log.Warn("dns: resolv.conf is not the client's (changed since, or never replaced); leaving it as it is", "path", path, "when", when)
	case errLink == nil:
		if err := replaceWithLink(path, string(target)); err != nil {
			return fmt.Errorf("dns: restore %s: %w", path, err)
		}
		r.hc.Log.Info("dns: resolv.conf restored", "path", path, "link_to", string(target), "when", when)
	default:
		fi, err := os.Stat(saved)
		if err != nil {
			return fmt.Errorf("dns: restore %s: %w", path, err)
		}
		if err := atomicfile.WriteFile(path, data, fi.Mode().Perm()); err != nil {
			return fmt.Errorf("dns: restore %s: %w", path, err)
		}
		r.hc.Log.Info("dns: resolv.conf restored", "path", path, "when", when)
	}
	for _, f := range []string{saved, link} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("dns: forget the saved %s: %w", path, err)
		}
	}
	return nil
}

// removeOurs removes the client's resolv.conf when there is no original
// to put back.
func (r *resolvConf) removeOurs(when string) error {
	path := r.hc.ResolvConf
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if ours, err := isOurs(path); err != nil || !ours {
		return err
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("dns: restore %s: %w", path, err)
	}
	r.hc.Log.Info("dns: resolv.conf removed (no original saved)", "path", path, "when", when)
	return nil
}

// isOurs reports whether path is the client's resolv.conf, or missing.
func isOurs(path string) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return false, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	return strings.HasPrefix(string(data), resolvConfMarker), nil
}

// replaceWithLink makes path a symbolic link to target, at once.
func replaceWithLink(path, target string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".link.tmp")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
