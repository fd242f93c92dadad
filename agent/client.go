package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/control/token"
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
	// User is reported to the edge with the device.
	User string
	// Version is reported to the edge at enrollment.
	Version string
	// Log is the daemon's logger; nil discards.
	Log *slog.Logger
}

// RunClient runs the client until ctx ends, then undoes everything it did to the host.
func RunClient(ctx context.Context, cfg ClientConfig) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.TunName == "" {
		cfg.TunName = DefaultClientTunName
	}
	if cfg.StateDir == "" {
		return errors.New("client: --state-dir is required")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("client: create state dir: %w", err)
	}
	k, err := loadOrCreateKey(cfg.StateDir)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	ops, hostState, err := openHost(cfg.StateDir, cfg.TunName, log)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer ops.Close()
	api, err := deviceClient(ctx, cfg, k, log)
	if err != nil {
		return err
	}
	apiHost := ""
	if buf, err := os.ReadFile(filepath.Join(cfg.StateDir, credentialFile)); err == nil {
		if cred, err := token.DecodeSecret(strings.TrimSpace(string(buf)), token.KindDevice); err == nil {
			if u, err := url.Parse(cred.API); err == nil {
				apiHost = u.Hostname()
			}
		}
	}
	conf, etag, _, err := api.WatchDeviceConfig(ctx, "", 0)
	if err != nil {
		return fmt.Errorf("client: fetch configuration: %w", err)
	}
	log.Info("device ready", "ip", conf.IP, "vnet", conf.VNetName, "edge", conf.Edge.Endpoint)

	kernelTUN, err := tun.CreateKernel(cfg.TunName, conf.MTU)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	clamped, err := tun.NewMSSClamp(kernelTUN, conf.MTU)
	if err != nil {
		kernelTUN.Close()
		return fmt.Errorf("client: %w", err)
	}
	dev, err := startDevice(clamped, k, conf.Edge, log.With("component", "wireguard-go"))
	if err != nil {
		clamped.Close()
		return fmt.Errorf("client: %w", err)
	}
	defer dev.Close()
	if err := tun.AddAddress(cfg.TunName, netip.PrefixFrom(conf.IP, conf.IP.BitLen())); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	hm, err := host.NewManager(ops, hostState)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer func() {
		if err := hm.Close(); err != nil {
			log.Error("restoring the host", "err", err)
		}
	}()
	apply := func(c model.DeviceConfig) {
		if err := dev.setEdge(c.Edge); err != nil {
			log.Error("updating the edge peer", "err", err)
		}
		routes, err := clientRoutes(c, apiHost)
		if err == nil {
			err = hm.Set(&host.Config{Interface: cfg.TunName, Routes: routes})
		}
		if err != nil {
			log.Error("configuring the host", "err", err)
			return
		}
		log.Info("host configured", "ip", c.IP, "vnet", c.VNetName, "split_mode", c.SplitTunnel.Mode, "routes", len(routes))
	}
	apply(conf)
	for ctx.Err() == nil {
		next, tag, changed, err := api.WatchDeviceConfig(ctx, etag, pollWait)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			var e *model.Error
			if errors.As(err, &e) && e.Kind == model.KindUnauthorized {
				return fmt.Errorf("client: the edge no longer accepts this device: %w", err)
			}
			log.Warn("waiting for configuration", "err", err)
			sleep(ctx, 2*time.Second)
		case changed:
			etag = tag
			apply(next)
		}
	}
	log.Info("stopping")
	return nil
}

// deviceClient returns the API client of the enrolled device, enrolling first
// (with cfg.Token) if the state dir holds no credential.
func deviceClient(ctx context.Context, cfg ClientConfig, k key, log *slog.Logger) (*client.Client, error) {
	path := filepath.Join(cfg.StateDir, credentialFile)
	if buf, err := os.ReadFile(path); err == nil {
		return client.NewDevice(strings.TrimSpace(string(buf)))
	}
	if cfg.Token == "" {
		return nil, fmt.Errorf("client: not enrolled yet: pass --token with an enrollment token (switchyard device enroll-token create)")
	}
	enroller, err := client.NewEnroller(cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	name := cfg.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	req := model.DeviceEnrollment{
		Name: name, DeviceType: runtime.GOOS, OSVersion: osVersion(), Version: cfg.Version,
		PublicKey: k.publicBase64(), User: cfg.User,
	}
	var enrolled model.EnrolledDevice
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		if enrolled, err = enroller.EnrollDevice(ctx, req); err == nil {
			break
		}
		var e *model.Error
		if errors.As(err, &e) {
			return nil, fmt.Errorf("client: enroll: %w", err)
		}
		log.Warn("edge unreachable; retrying", "err", err, "in", backoff)
		if !sleep(ctx, backoff) {
			return nil, ctx.Err()
		}
	}
	if err := pki.WriteFileAtomic(path, []byte(enrolled.Credential+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("client: save credential: %w", err)
	}
	log.Info("enrolled", "device", enrolled.Device.ID, "name", enrolled.Device.Name, "ip", enrolled.Device.IP)
	return client.NewDevice(enrolled.Credential)
}

// DeviceAPI returns the API client of the device enrolled in stateDir, for
// `switchyard client vnet`.
func DeviceAPI(stateDir string) (*client.Client, error) {
	buf, err := os.ReadFile(filepath.Join(stateDir, credentialFile))
	if err != nil {
		return nil, fmt.Errorf("read device credential (is the client enrolled? run switchyard client up): %w", err)
	}
	return client.NewDevice(strings.TrimSpace(string(buf)))
}

// clientRoutes is what the client routes into its TUN: the split tunnel's
// result, plus the overlay range, never the edge's own addresses (its
// WireGuard endpoint and its API host).
func clientRoutes(c model.DeviceConfig, apiHost string) ([]netip.Prefix, error) {
	list := make([]netip.Prefix, len(c.SplitTunnel.Entries))
	for i, e := range c.SplitTunnel.Entries {
		list[i] = e.Address
	}
	var never []netip.Addr
	hosts := []string{apiHost}
	if h, _, err := net.SplitHostPort(c.Edge.Endpoint); err == nil {
		hosts = append(hosts, h)
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		ips, err := net.LookupIP(h)
		if err != nil {
			return nil, fmt.Errorf("resolve edge address %s: %w", h, err)
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip); ok {
				never = append(never, a.Unmap())
			}
		}
	}
	return routing.SplitRoutes(c.SplitTunnel.Mode != model.SplitInclude, list, []netip.Prefix{c.OverlayRange}, never)
}

// osVersion is the kernel release, as the device list shows it.
func osVersion() string {
	buf, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(buf))
}
