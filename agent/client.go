package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/token"
	"github.com/switchyard/switchyard/internal/atomicfile"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/routing"
	"github.com/switchyard/switchyard/routing/host"
	"github.com/switchyard/switchyard/tun"
)

// credentialFile keeps an enrolled device's credential (mode 0600).
const credentialFile = "device.credential"

// DefaultClientTunName is the client's TUN interface unless --tun-name says otherwise.
const DefaultClientTunName = "sy1"

// ClientConfig configures the client role.
type ClientConfig struct {
	// Token is the enrollment token; needed only until the device is enrolled.
	Token string
	// StateDir keeps the WireGuard key, the device credential and the host state.
	StateDir string
	// TunName is the TUN interface to create.
	TunName string
	// Name is the device name; empty means the hostname.
	Name string
	// User, if set, is the user the device expects to belong to: enrollment
	// is refused unless the enrollment token names that user (the token,
	// never the device, sets it).
	User string
	// Protocol is how the client reaches the edge; empty means wireguard.
	Protocol Protocol
	// Edges is how many edges of a cluster the client keeps sessions to
	// over WireGuard, one active and the others standby (0 means
	// DefaultEdges; 1 holds one session, as with a single edge).
	Edges int
	// WireGuardRetry is how long auto stays on MASQUE before it tries
	// WireGuard again; 0 means DefaultWireGuardRetry.
	WireGuardRetry time.Duration
	// Version is reported to the edge at enrollment and in the posture.
	Version string
	// PostureInterval is how often the client collects its posture (and
	// reports it when it changed); 0 means DefaultPostureInterval.
	PostureInterval time.Duration
	// MetricsListen is the TCP address of the Prometheus /metrics endpoint
	// (plain HTTP); empty turns it off.
	MetricsListen string
	// Userspace, if set, runs the client without a TUN or privileges (see
	// UserspaceConfig); TunName and Seams.TUN and Seams.Host are then unused.
	Userspace *UserspaceConfig
	// NoDNS leaves DNS alone: no stub, the host's resolver configuration
	// untouched, the proxies resolving with the host's resolver, and the
	// split tunnel's domain entries unused (for operators who manage DNS
	// themselves). A client on a Seams.TUN has no DNS either: its overlay
	// address is on no host interface.
	NoDNS bool
	// DNS says how the kernel mode meets the host's DNS.
	DNS DNSHost
	// Login enrolls by signing in with the edge's identity provider
	// instead of with Token, and signs in again when the device's session
	// ended; LoginFlow is client.LoginFlowDevice (empty) or
	// client.LoginFlowBrowser, and LoginOut where the sign-in's address
	// and code are printed (nil: stderr).
	Login     bool
	LoginFlow string
	LoginOut  io.Writer
	// EdgeAPI and EdgeCAPin name the edge a device without a token or
	// credential signs in at (switchyard enrollment login-command).
	EdgeAPI, EdgeCAPin string
	// Log is the daemon's logger; nil discards.
	Log *slog.Logger
	// Seams replace the operating system in tests; production leaves them nil.
	Seams
}

// RunClient runs the client until ctx ends, then undoes everything it did to the host.
func RunClient(ctx context.Context, cfg ClientConfig) error {
	if cfg.TunName == "" {
		cfg.TunName = DefaultClientTunName
	}
	var socks, httpc net.Listener // the userspace mode's proxies, open before anything else
	if cfg.Userspace != nil {
		var err error
		if socks, httpc, err = listenProxies(cfg.Userspace); err != nil {
			return fmt.Errorf("client: %w", err)
		}
		defer func() { // once startUserspace took them, closing again is harmless
			for _, l := range []net.Listener{socks, httpc} {
				if l != nil {
					l.Close()
				}
			}
		}()
	}
	log, k, err := prepare(cfg.StateDir, cfg.Log)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	loc := &local{role: roleClient, userspace: cfg.Userspace != nil}
	stopLocal, err := serveLocal(cfg.StateDir, loc, log)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer stopLocal()
	api, apiHost, auth, err := deviceClient(ctx, cfg, k, log)
	if err != nil {
		return err
	}
	loc.api.Store(api)
	posture := newPostureReporter(hostPosture(cfg.TunName), cfg.Version, cfg.PostureInterval, api.ReportPosture, log)
	conf, etag, _, err := api.WatchDeviceConfig(ctx, "", 0)
	if client.SessionExpired(err) {
		return sessionStop(cfg.StateDir, nil, log)
	}
	if err != nil {
		return fmt.Errorf("client: fetch configuration: %w", err)
	}
	clearSessionEnded(cfg.StateDir)
	loc.session.Store(conf.SessionExpiresAt)
	log.Info("device ready", "ip", conf.IP, "vnet", conf.VNetName, "edge", conf.Edge.Endpoint)

	tc := tunnelConfig{protocol: cfg.Protocol, wireGuardRetry: cfg.WireGuardRetry, auth: auth, seams: cfg.Seams, edges: cfg.Edges}
	var ns *tun.Netstack
	if cfg.Userspace != nil {
		// The overlay address lives in a stack of our own; the host is left alone.
		if ns, err = tun.NewNetstack(conf.IP, tunMTU(cmp.Or(cfg.Protocol, ProtocolWireGuard), conf.MTU)); err != nil {
			return fmt.Errorf("client: %w", err)
		}
		tc.seams.TUN, tc.seams.Host, tc.noHostState = ns.Device(), noHost{}, true
	}
	ht, err := openHostTunnel(cfg.StateDir, cfg.TunName, conf.MTU, k, conf.Edge, tc, log)
	if err != nil {
		if ns != nil {
			ns.Device().Close()
		}
		return fmt.Errorf("client: %w", err)
	}
	defer ht.Close()
	// The host's routes follow the configuration and the addresses the DNS
	// stub learns for the split tunnel's domains; mu serializes the two.
	var mu sync.Mutex
	var cur *model.DeviceConfig
	var cd *clientDNS
	var us *userspace
	var ip currentIP
	ip.set(conf.IP)
	setRoutesLocked := func() (int, error) {
		var learned, dnsRoutes []netip.Prefix
		if cd != nil {
			var gen uint64
			learned, gen = cd.routes.snapshot()
			defer cd.routes.applied(gen)
			dnsRoutes = toDNS(*cur).TunnelRoutes()
		}
		routes, err := clientRoutes(*cur, apiHost, dnsRoutes, learned)
		if err != nil {
			return 0, err
		}
		if us != nil {
			us.split.set(routes)
		}
		hc := &host.Config{Routes: routes}
		if cur.IP.Is4() {
			hc.Src4 = cur.IP
		}
		return len(routes), ht.set(cur.Edge, cur.OverlayRange, []netip.Prefix{netip.PrefixFrom(cur.IP, cur.IP.BitLen())}, hc)
	}
	routes := newDomainRoutes(func() {
		mu.Lock()
		defer mu.Unlock()
		if cur == nil {
			return
		}
		if _, err := setRoutesLocked(); err != nil {
			log.Warn("routing the split tunnel's domain addresses", "err", err)
		}
	})
	dnsOff := cfg.NoDNS || (cfg.Userspace == nil && cfg.Seams.TUN != nil)
	if ns != nil {
		var resolve func(context.Context, string) ([]netip.Addr, error)
		if !dnsOff {
			if cd, err = startUserspaceDNS(ns, routes, log); err != nil {
				return fmt.Errorf("client: %w", err)
			}
			resolve = cd.stub.Lookup
		}
		if us, err = startUserspace(ns, cfg.Userspace, socks, httpc, resolve, log); err != nil {
			if cd != nil {
				cd.close(ctx)
			}
			return fmt.Errorf("client: %w", err)
		}
		defer us.close() // before ht.Close, which ends the stack
	}
	ht.followActive(loc.beat.Store)
	loc.tunnel.Store(ht)
	if err := ht.addAddress(netip.PrefixFrom(conf.IP, conf.IP.BitLen())); err != nil {
		return fmt.Errorf("client: %w", err)
	}

	switch {
	case dnsOff:
		log.Info("dns left to the host", "no_dns", cfg.NoDNS)
	case us == nil:
		if cd, err = startKernelDNS(ctx, cfg, ip.get, routes, log); err != nil {
			return fmt.Errorf("client: %w", err)
		}
	}
	if cd != nil {
		sweepCtx, stopSweep := context.WithCancel(ctx)
		var sweep sync.WaitGroup
		sweep.Go(func() { routes.run(sweepCtx, domainRouteSweep) })
		defer func() { stopSweep(); sweep.Wait() }() // before ht.Close removes every route
		defer cd.close(ctx)                          // first: the host's DNS back while the TUN exists
	}
	if cfg.MetricsListen != "" {
		var more []func() []metrics.Sample
		if cd != nil {
			more = append(more, cd.samples)
		}
		stop, err := ht.serveMetrics(ctx, cfg.MetricsListen, "client", more...)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		defer stop()
	}
	// The run ends at the session's end, when the edge cuts the traffic.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	session := &sessionTimer{onEnd: func(at time.Time) { stopRun(sessionExpired(at)) }}
	defer session.stop()
	apply := func(c model.DeviceConfig) {
		session.set(c.SessionExpiresAt)
		loc.session.Store(c.SessionExpiresAt)
		mu.Lock()
		defer mu.Unlock()
		cur = &c
		ip.set(c.IP)
		posture.setNetworks(c.PostureNetworks)
		if cd != nil {
			cd.routes.setDomains(splitDomains(c.SplitTunnel))
		}
		n, err := setRoutesLocked()
		if cd != nil {
			cd.set(ctx, c)
		}
		if err != nil {
			log.Error("configuring the host", "err", err)
			return
		}
		log.Info("host configured", "ip", c.IP, "vnet", c.VNetName, "split_mode", c.SplitTunnel.Mode, "routes", n)
	}
	apply(conf)
	stopPosture := posture.start(ctx)
	defer stopPosture()
	loc.posture.Store(posture)
	if us != nil { // with its routes: access tcp may dial
		loc.us.Store(us)
		if cfg.Userspace.ready != nil {
			cfg.Userspace.ready(us)
		}
	}
	err = follow(runCtx, log, etag, func(ctx context.Context, etag string) (model.DeviceConfig, string, bool, error) {
		return api.WatchDeviceConfig(ctx, etag, pollWait)
	}, apply)
	if client.SessionExpired(err) || errors.Is(context.Cause(runCtx), ErrSessionExpired) && ctx.Err() == nil {
		mu.Lock()
		last := cur
		mu.Unlock()
		return sessionStop(cfg.StateDir, last, log)
	}
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// deviceClient returns the API client of the enrolled device, the edge
// API's host and the device's MASQUE credentials, enrolling first (with
// cfg.Token) if the state dir holds no credential.
func deviceClient(ctx context.Context, cfg ClientConfig, k key, log *slog.Logger) (*client.Client, string, masqueAuth, error) {
	path := filepath.Join(cfg.StateDir, credentialFile)
	credential, err := DeviceCredential(cfg.StateDir)
	var fresh []byte // a new credential, to keep
	switch {
	case errors.Is(err, os.ErrNotExist) && cfg.Login:
		fresh, err = signIn(ctx, cfg, k, "", log)
	case errors.Is(err, os.ErrNotExist):
		fresh, err = enrollDevice(ctx, cfg, k, log)
	case err == nil && cfg.Login && sessionEnded(ctx, credential):
		fresh, err = signIn(ctx, cfg, k, credential, log)
	}
	if err == nil && fresh != nil {
		err = atomicfile.WriteFile(path, fresh, 0o600)
		credential = strings.TrimSpace(string(fresh))
	}
	if err != nil {
		return nil, "", masqueAuth{}, fmt.Errorf("client: %w", err)
	}
	cred, err := token.DecodeSecret(credential, token.KindDevice)
	if err != nil {
		return nil, "", masqueAuth{}, fmt.Errorf("client: device credential %s: %w", path, err)
	}
	u, err := url.Parse(cred.API)
	if err != nil {
		return nil, "", masqueAuth{}, fmt.Errorf("client: device credential %s: %w", path, err)
	}
	api, err := client.NewDevice(credential)
	auth := masqueAuth{header: http.Header{"Authorization": {"Bearer " + credential}}, tls: client.PinnedTLS(cred.CAPin)}
	return api, u.Hostname(), auth, err
}

// DeviceCredential returns the device credential an enrolled client keeps
// in its state directory dir; an error matching os.ErrNotExist means the
// client has not enrolled there.
func DeviceCredential(dir string) (string, error) {
	buf, err := os.ReadFile(filepath.Join(dir, credentialFile))
	if err != nil {
		return "", fmt.Errorf("read the device credential: %w", err)
	}
	return strings.TrimSpace(string(buf)), nil
}

// enrollDevice registers this device with the enrollment token and returns
// its credential.
func enrollDevice(ctx context.Context, cfg ClientConfig, k key, log *slog.Logger) ([]byte, error) {
	if cfg.Token == "" {
		return nil, errors.New("not enrolled yet: pass --token with an enrollment token (switchyard device enroll-token create), or sign in with --login")
	}
	enroller, err := client.NewEnroller(cfg.Token)
	if err != nil {
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	posture, err := hostPosture(cfg.TunName).collect(cfg.Version, nil)
	if err != nil {
		log.Debug("reading the device posture", "err", err)
	}
	req := model.DeviceEnrollment{
		Name: name, DeviceType: runtime.GOOS, OSVersion: osVersion(), Version: cfg.Version,
		PublicKey: k.publicBase64(), KeyProof: k.keyProof(), User: cfg.User, Posture: &posture,
	}
	enrolled, err := retry(ctx, log, func() (model.EnrolledDevice, error) { return enroller.EnrollDevice(ctx, req) })
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	log.Info("enrolled", "device", enrolled.Device.ID, "name", enrolled.Device.Name, "ip", enrolled.Device.IP)
	return []byte(enrolled.Credential + "\n"), nil
}

// clientRoutes is what the client routes into its TUN: the split tunnel's
// result, its prefixes and the addresses learned for its domains (learned:
// into the tunnel in Include mode, around it in Exclude mode), plus the
// overlay range and the DNS servers the stub reaches through the tunnel
// (dns, in either mode), never the edge's own addresses (its WireGuard
// endpoint and its API host).
func clientRoutes(c model.DeviceConfig, apiHost string, dns, learned []netip.Prefix) ([]netip.Prefix, error) {
	var list []netip.Prefix
	for _, e := range c.SplitTunnel.Entries {
		if e.Address.IsValid() { // a domain entry counts through learned
			list = append(list, e.Address)
		}
	}
	list = append(list, learned...)
	never, err := underlay(c.Edge, apiHost)
	if err != nil {
		return nil, err
	}
	always := append([]netip.Prefix{c.OverlayRange}, dns...)
	return routing.SplitRoutes(c.SplitTunnel.Mode != model.SplitInclude, list, always, never)
}

// sessionEnded reports whether the edge refuses the device credential cur
// because the device's session ended.
func sessionEnded(ctx context.Context, cur string) bool {
	api, err := client.NewDevice(cur)
	if err != nil {
		return false
	}
	_, _, _, err = api.WatchDeviceConfig(ctx, "", 0)
	return client.SessionExpired(err)
}

// sessionStop is how a client's run ends when its session ended: it says
// so in the log and in the state directory (client status), and returns
// the error for RunClient, whose deferred calls bring the tunnel down.
func sessionStop(stateDir string, cfg *model.DeviceConfig, log *slog.Logger) error {
	at := expiredAt(cfg)
	err := sessionExpired(at)
	log.Error("the sign-in ended: the tunnel is down", "session_expired_at", at, "err", err)
	writeSessionEnded(stateDir, at, log)
	return fmt.Errorf("client: %w", err)
}
