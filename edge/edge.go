package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/cluster"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/store/boltstore"
	"github.com/switchyard/switchyard/control/store/etcdstore"
	"github.com/switchyard/switchyard/transport/masque"
	"github.com/switchyard/switchyard/web"
)

// Config configures an edge.
type Config struct {
	// DataDir holds the store, CA, keys and admin config.
	DataDir string
	// APIListen is the TCP address of the control API, e.g. 127.0.0.1:7443.
	APIListen string
	// APIPublicURL is the API's address as agents reach it, written into tokens;
	// empty means https:// and the listening address (or PublicAddr's host).
	APIPublicURL string
	// PublicAddr is host:port of the WireGuard listener as agents reach it;
	// empty means loopback and the WireGuard port.
	PublicAddr string
	// WGListen is the WireGuard UDP address, HOST:PORT: an empty or
	// unspecified host listens on every address (OffloadBind on Linux, with
	// UDP offloads), an IP address on that address alone (without offloads).
	// Port 0 picks one.
	WGListen string
	// MASQUEListen is the UDP address of the CONNECT-IP (HTTP/3) listener;
	// empty serves no MASQUE. Agents reach it at PublicAddr's host and this
	// port.
	MASQUEListen string
	// MTU is the tunnel MTU agents use; 0 means DefaultMTU.
	MTU int
	// OverlayRange is the range device overlay addresses come from; zero
	// means model.DefaultOverlayRange.
	OverlayRange netip.Prefix
	// MaxFlows bounds the flow table (about 430 bytes a flow); 0 means
	// DefaultMaxFlows.
	MaxFlows int
	// DeletedRetention is how long deleted virtual networks, tunnels and
	// routes stay visible before the edge purges them; 0 means
	// DefaultDeletedRetention.
	DeletedRetention time.Duration
	// APILimits bound the API's connections and their timeouts (idle, read,
	// write); zero fields take the defaults (DefaultAPIMaxConns connections).
	APILimits api.Limits
	// OIDC makes the edge a relying party of the operator's identity
	// provider for user and admin sign-in; nil: sign-in is off.
	OIDC *OIDCConfig
	// MASQUEMaxSessions bounds the MASQUE sessions one agent (a connector
	// replica or a device) holds at once; 0 means DefaultMASQUEMaxSessions.
	MASQUEMaxSessions int
	// MetricsListen is the TCP address of the Prometheus /metrics endpoint
	// (plain HTTP); empty turns it off.
	MetricsListen string
	// Etcd, if set, keeps the configuration and the cluster's secrets in
	// etcd, shared by every edge of the cluster; nil keeps them in DataDir.
	Etcd *EtcdConfig
	// EdgeName names this edge in its cluster (unique); empty means the hostname.
	EdgeName string
	// Version is the software version each edge registers in its cluster.
	Version string
	// Log is the daemon's logger; nil discards.
	Log *slog.Logger
	// Announce receives the messages meant for the operator (the admin token,
	// printed once); nil discards.
	Announce io.Writer

	// certLifetime is the API certificate's lifetime; 0 means
	// pki.ServerLifetime (tests shorten it to see renewals).
	certLifetime time.Duration
}

// DefaultMTU is the tunnel MTU: 1500 less the WireGuard overhead over IPv6.
const DefaultMTU = 1420

// DefaultDeletedRetention is how long deleted records stay listed before the
// edge purges them, unless configured.
const DefaultDeletedRetention = registry.DefaultDeletedRetention

// DefaultMaxFlows bounds the flow table unless configured: about 56 MB.
const DefaultMaxFlows = 1 << 17

// DefaultAPIMaxConns caps the API's connections unless configured; every
// agent holds one for its configuration long poll.
const DefaultAPIMaxConns = api.DefaultMaxConns

// DefaultMASQUEMaxSessions bounds one agent's MASQUE sessions unless
// configured: one, and room for reconnects while an old session times out.
const DefaultMASQUEMaxSessions = masque.DefaultMaxSessions

// Run runs the edge until ctx is done, then shuts down cleanly: an edge of
// a cluster drains first (see drain), then withdraws from the cluster.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Announce == nil {
		cfg.Announce = io.Discard
	}
	if cfg.DataDir == "" {
		return errors.New("edge: --data-dir is required")
	}
	var (
		id    *identity
		st    store.Store
		etcdS *etcdstore.Store
		view  *cluster.SessionView // the cluster's sessions; nil for a single edge
		name  string               // this edge's name in its cluster
		err   error
	)
	if cfg.Etcd != nil {
		if etcdS, err = openEtcd(ctx, cfg.Etcd); err != nil {
			return fmt.Errorf("edge: %w", err)
		}
		defer etcdS.Close()
		st = etcdS
		if name, err = edgeName(cfg); err != nil {
			return fmt.Errorf("edge: %w", err)
		}
		if id, err = loadClusterIdentity(ctx, etcdS, cfg.Etcd.ClusterKey, cfg.DataDir, name); err != nil {
			return fmt.Errorf("edge: %w", err)
		}
		if id.heartbeat4, id.heartbeat6, err = edgeAddresses(ctx, etcdS, name, cfg.OverlayRange); err != nil {
			return fmt.Errorf("edge: %w", err)
		}
		viewCtx, stopView := context.WithCancel(context.WithoutCancel(ctx)) // followed while the edge drains
		defer stopView()
		view = cluster.FollowSessions(viewCtx, etcdS.Client(), etcdS.Prefix(), log.With("component", "cluster"))
	} else {
		if id, err = loadIdentity(cfg.DataDir); err != nil {
			return fmt.Errorf("edge: data dir %s: %w", cfg.DataDir, err)
		}
		bs, err := boltstore.Open(filepath.Join(cfg.DataDir, storeFile), boltstore.Options{})
		if err != nil {
			return fmt.Errorf("edge: %w", err)
		}
		defer bs.Close()
		st = bs
	}
	if !cfg.OverlayRange.IsValid() {
		cfg.OverlayRange = model.DefaultOverlayRange
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MaxFlows < 0 {
		return fmt.Errorf("edge: --max-flows %d is negative", cfg.MaxFlows)
	}
	if cfg.APILimits.MaxConns < 0 {
		return fmt.Errorf("edge: --api-max-conns %d is negative", cfg.APILimits.MaxConns)
	}
	if cfg.MASQUEMaxSessions < 0 {
		return fmt.Errorf("edge: --masque-max-sessions %d is negative", cfg.MASQUEMaxSessions)
	}
	if cfg.MTU < 1280 || cfg.MTU > 9000 {
		return fmt.Errorf("edge: MTU %d is outside 1280..9000", cfg.MTU)
	}
	if cfg.DeletedRetention < 0 {
		return fmt.Errorf("edge: --deleted-retention %s is negative", cfg.DeletedRetention)
	}
	if cfg.DeletedRetention == 0 {
		cfg.DeletedRetention = DefaultDeletedRetention
	}
	reg, err := registry.New(ctx, st, registry.Options{Secrets: id.master, OverlayRange: cfg.OverlayRange})
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}

	dp, err := startDataplane(cfg, id, reg, log)
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	defer dp.ep.Close()
	if cfg.PublicAddr == "" {
		cfg.PublicAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(int(dp.ep.Port())))
		log.Warn("no --public-addr: tokens will point agents at loopback", "public_addr", cfg.PublicAddr)
	}
	// The loops run on after ctx ends, until Run returns: while the edge
	// drains, it still follows the registry, its trunks and its sessions.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopRun(); dp.wg.Wait() }() // before the endpoint and store close
	dp.wg.Add(4)
	go func() {
		defer dp.wg.Done()
		if err := dp.follow(runCtx); err != nil && runCtx.Err() == nil {
			log.Error("following the control plane stopped", "err", err)
		}
	}()
	go func() { defer dp.wg.Done(); dp.watchLiveness(runCtx) }()
	go func() { defer dp.wg.Done(); dp.runFlows(runCtx) }()
	go func() {
		defer dp.wg.Done()
		purgeDeleted(runCtx, reg, purgeEvery, cfg.DeletedRetention, log.With("component", "registry"))
	}()

	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("edge: listen for metrics on %s: %w", cfg.MetricsListen, err)
		}
		dp.wg.Add(1)
		go func() { defer dp.wg.Done(); dp.serveMetrics(runCtx, mln) }()
	}

	ln, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("edge: listen for the API on %s: %w", cfg.APIListen, err)
	}
	defer ln.Close()
	apiURL := cfg.APIPublicURL
	if apiURL == "" {
		apiURL = "https://" + advertised(ln.Addr().(*net.TCPAddr), cfg.PublicAddr)
	}
	cert, err := id.ca.NewServerCert(certHosts(ln.Addr().(*net.TCPAddr), apiURL, cfg.PublicAddr), cfg.certLifetime)
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	dp.wg.Add(1)
	go func() { defer dp.wg.Done(); cert.Run(runCtx, log.With("component", "pki")) }()
	if err := writeAdminConfig(cfg.DataDir, apiURL, id); err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	if id.newToken != "" {
		fmt.Fprintf(cfg.Announce, "Admin token (shown once; also saved to %s):\n  %s\n",
			filepath.Join(cfg.DataDir, "admin.json"), id.newToken)
	}

	masqueAddr, stopMASQUE, err := startMASQUE(cfg, cert.GetCertificate, dp, log)
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	defer stopMASQUE()

	var edgesChanged func() <-chan struct{} // nil for a single edge
	if etcdS != nil {
		ew := newEdgeWatch()
		edgesChanged = ew.changed
		dp.wg.Add(1)
		go func() { defer dp.wg.Done(); ew.follow(runCtx, etcdS.Client(), etcdS.Prefix()) }()
	}
	logins, err := startOIDC(ctx, cfg.OIDC, apiURL, log.With("component", "oidc"))
	if err != nil {
		return err
	}
	if logins != nil {
		defer logins.Close()
	}
	apiSrv := api.NewServer(reg, api.Options{
		AdminTokenHash: id.adminHash,
		Edge:           api.EdgeInfo{API: apiURL, CAPin: pki.Pin(id.ca.Cert), Endpoint: cfg.PublicAddr, EdgeKey: id.wgPublic, MTU: cfg.MTU, MASQUE: masqueAddr},
		Connections:    clusterConnections(dp.connections, view, name),
		Failover:       dp.failover,
		Sessions:       viewSessions(view),
		LastSeen:       dp.lastSeen,
		LastHandshake:  dp.lastHandshakes,
		PathMTU:        dp.pathMTUs,
		Stats:          dp.stats,
		FlowLog:        dp.flows.tail,
		TestFlow:       flowTester(reg),
		Log:            log.With("component", "api"),
		Limits:         cfg.APILimits,
		Edges:          edgeLister(etcdS, view),
		EdgesChanged:   edgesChanged,
		Logins:         loginsOption(logins),
		AdminGroup:     cfg.OIDC.adminGroup(),
	})
	defer apiSrv.Close() // after the HTTP server is shut down, before the store closes
	consoleEdge := ""
	if etcdS != nil {
		consoleEdge = name
	}
	console, err := web.New(web.Config{API: apiSrv, AdminTokenHash: id.adminHash, EdgeName: consoleEdge, Log: log.With("component", "console")})
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	apiSrv.SetConsole(console)
	srv := apiSrv.HTTPServer(&tls.Config{GetCertificate: cert.GetCertificate, MinVersion: tls.VersionTLS13})
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	// Requests end when the API shuts down, after the drain, not at the
	// signal: while the edge drains, its API (and agents' long polls) serves on.
	reqCtx, endRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer endRequests()
	srv.BaseContext = func(net.Listener) context.Context { return reqCtx }
	log.Info("edge started", "api", apiURL, "listen", ln.Addr().String(), "wg_port", dp.ep.Port(), "public_addr", cfg.PublicAddr, "masque", masqueAddr, "data_dir", cfg.DataDir)

	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(apiSrv.Listener(ln), "", "") }()
	if etcdS != nil {
		leave, err := joinCluster(ctx, etcdS, cfg, name, apiURL, masqueAddr, id, dp, log)
		if err != nil {
			srv.Close()
			<-errc
			return fmt.Errorf("edge: %w", err)
		}
		defer leave() // first of the deferred: before the store closes
		dp.wg.Add(2)
		go func() { defer dp.wg.Done(); dp.followTrunks(runCtx, etcdS.Client(), etcdS.Prefix(), name) }()
		go func() { defer dp.wg.Done(); dp.followRemote(runCtx, view) }()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("edge: serve API: %w", err)
	case <-ctx.Done():
	}
	if etcdS != nil {
		dp.drain(drainBound) // the agents move first; then the API stops and the deferred leave withdraws
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	endRequests() // long polls answer now rather than hold Shutdown for their wait
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	<-errc
	log.Info("edge stopped")
	return nil
}

// advertised returns host:port for the API URL: the listening address, or,
// when it listens on every address, the public address's host (else loopback).
func advertised(a *net.TCPAddr, publicAddr string) string {
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
		if h, _, err := net.SplitHostPort(publicAddr); err == nil && h != "" {
			host = h
		}
	}
	return net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// certHosts lists the names and addresses the API certificate must cover.
func certHosts(a *net.TCPAddr, apiURL, publicAddr string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if !a.IP.IsUnspecified() {
		hosts = append(hosts, a.IP.String())
	} else if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok {
				hosts = append(hosts, n.IP.String())
			}
		}
	}
	if h, _, err := net.SplitHostPort(publicAddr); err == nil {
		hosts = append(hosts, h)
	}
	if u, err := url.Parse(apiURL); err == nil {
		hosts = append(hosts, u.Hostname())
	}
	return hosts
}
