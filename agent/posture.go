package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// DefaultPostureInterval is how often a client collects its posture unless
// --posture-interval says otherwise.
const DefaultPostureInterval = 5 * time.Minute

// postureRefresh is how long a client goes at most without reporting its
// posture, changed or not: the edge sees it is still current.
const postureRefresh = 5 * time.Minute

// postureSource reads what a client reports about its host. root is the
// filesystem root its files are read under ("/" in production, a fake
// tree in tests); firewall and addrs are the two readings that are not
// files, nil meaning none.
type postureSource struct {
	root     string
	firewall func() (bool, error)
	addrs    func() ([]netip.Addr, error)
}

// hostPosture reads the posture of this host: its files, its nftables
// ruleset, and the addresses of its interfaces but the tunnel's (tunName).
func hostPosture(tunName string) postureSource {
	return postureSource{root: "/", firewall: firewallActive, addrs: func() ([]netip.Addr, error) { return hostAddrs(tunName) }}
}

// collect reads the posture, the network's name being the first of nets
// that holds an address of the host. A reading that fails leaves its field
// empty (false) and is part of the error; the posture is always usable.
func (s postureSource) collect(version string, nets []model.PostureNetwork) (model.Posture, error) {
	var errs []error
	p := model.Posture{OS: runtime.GOOS, ClientVersion: version, CollectedAt: time.Now().UTC()}
	p.Kernel = readLine(s.path("proc/sys/kernel/osrelease"))
	p.OSVersion = osReleaseVersion(s.path("etc/os-release"))
	if p.OSVersion == "" {
		p.OSVersion = p.Kernel
	}
	p.Serial = readLine(s.path("sys/class/dmi/id/product_serial")) // root only, on most hosts
	var err error
	if p.DiskEncrypted, err = rootEncrypted(s.root); err != nil {
		errs = append(errs, err)
	}
	if s.firewall != nil {
		if p.Firewall, err = s.firewall(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.addrs != nil && len(nets) > 0 {
		addrs, err := s.addrs()
		if err != nil {
			errs = append(errs, err)
		}
		p.Network = postureNetwork(nets, addrs)
	}
	return p, errors.Join(errs...)
}

// path is name (slash separated, relative) under the source's root.
func (s postureSource) path(name string) string {
	return filepath.Join(s.root, filepath.FromSlash(name))
}

// readLine is a file's first line, trimmed; "" when it cannot be read.
func readLine(path string) string {
	buf, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(buf), "\n")
	return strings.TrimSpace(line)
}

// osReleaseVersion is VERSION_ID of an os-release(5) file, unquoted; ""
// when the file or the field is missing.
func osReleaseVersion(path string) string {
	buf, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(buf))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "VERSION_ID="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// postureNetwork is the name of the first network whose prefix holds one of
// addrs; "" for none.
func postureNetwork(nets []model.PostureNetwork, addrs []netip.Addr) string {
	for _, n := range nets {
		p, err := netip.ParsePrefix(n.Prefix)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p.Contains(a.Unmap()) {
				return n.Name
			}
		}
	}
	return ""
}

// hostAddrs lists the addresses of the host's interfaces that are up,
// but loopback and the tunnel's (tunName).
func hostAddrs(tunName string) ([]netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifc := range ifs {
		if ifc.Name == tunName || ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // gone meanwhile
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					out = append(out, ip.Unmap())
				}
			}
		}
	}
	return out, nil
}

// postureReporter collects the client's posture every interval and
// reports it when it changed, or postureRefresh after the last report.
type postureReporter struct {
	src      postureSource
	version  string
	interval time.Duration
	report   func(context.Context, model.Posture) (model.Posture, error)
	log      *slog.Logger
	kick     chan struct{} // a change of networks: collect now

	mu   sync.Mutex // guards nets
	nets []model.PostureNetwork

	sendMu sync.Mutex     // one collection and report at a time; guards last and sentAt
	last   *model.Posture // the last reported, CollectedAt zeroed
	sentAt time.Time
}

// newPostureReporter returns a reporter; interval 0 means DefaultPostureInterval.
func newPostureReporter(src postureSource, version string, interval time.Duration,
	report func(context.Context, model.Posture) (model.Posture, error), log *slog.Logger) *postureReporter {
	if interval <= 0 {
		interval = DefaultPostureInterval
	}
	return &postureReporter{src: src, version: version, interval: interval, report: report, log: log, kick: make(chan struct{}, 1)}
}

// setNetworks sets the posture networks of the device's configuration; a
// change collects and reports at once.
func (r *postureReporter) setNetworks(nets []model.PostureNetwork) {
	r.mu.Lock()
	same := len(nets) == len(r.nets) && (len(nets) == 0 || equalNets(nets, r.nets))
	r.nets = nets
	r.mu.Unlock()
	if !same {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

func equalNets(a, b []model.PostureNetwork) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// start runs the reporting loop until ctx ends or stop is called; stop
// waits for it.
func (r *postureReporter) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.run(ctx) })
	return func() { cancel(); wg.Wait() }
}

// run collects every interval (and when kicked) and reports what changed.
func (r *postureReporter) run(ctx context.Context) {
	t := time.NewTimer(0) // a first report at start
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
			t.Stop()
		}
		if _, err := r.collectAndReport(ctx, false); err != nil && ctx.Err() == nil {
			r.log.Warn("reporting the device posture", "err", err)
		}
		t.Reset(r.interval)
	}
}

// reportNow collects and reports the posture whatever changed (the control
// socket's "report posture now"), and returns it.
func (r *postureReporter) reportNow(ctx context.Context) (model.Posture, error) {
	return r.collectAndReport(ctx, true)
}

// collectAndReport collects the posture and reports it when force, when it
// changed since the last report, or when that is postureRefresh old.
func (r *postureReporter) collectAndReport(ctx context.Context, force bool) (model.Posture, error) {
	r.mu.Lock()
	nets := r.nets
	r.mu.Unlock()
	p, err := r.src.collect(r.version, nets)
	if err != nil && r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.Debug("reading the device posture", "err", err)
	}
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	cmp := p
	cmp.CollectedAt = time.Time{}
	if !force && r.last != nil && *r.last == cmp && time.Since(r.sentAt) < postureRefresh {
		return p, nil
	}
	stored, err := r.report(ctx, p)
	if err != nil {
		return p, err
	}
	if r.last == nil || *r.last != cmp {
		r.log.Info("device posture reported", "os_version", p.OSVersion, "kernel", p.Kernel, "disk_encrypted", p.DiskEncrypted,
			"firewall", p.Firewall, "network", p.Network)
	}
	r.last, r.sentAt = &cmp, time.Now()
	return stored, nil
}
