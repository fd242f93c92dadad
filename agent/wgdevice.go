package agent

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// wgDevice is a wireguard-go device whose peer is the edge, or, in a
// cluster, two edges (see pair.go): the active one's AllowedIPs hold
// everything, the standby's only that edge's own heartbeat addresses.
type wgDevice struct {
	dev *device.Device
	ipc ipcer    // dev, but in tests
	pm  *pathMTU // path MTU probes of its edge sessions

	mu   sync.Mutex // serializes configuration
	edge model.EdgePeer
	pair []model.ClusterEdge // the two (or more) edges, when not one
	on   int                 // the index in pair of the active one
}

// ipcer is the configuration interface of a wireguard-go device
// (*device.Device has it): the seam for tests of the peer configuration.
type ipcer interface {
	IpcSet(string) error
	IpcGet() (string, error)
}

// startDevice runs a wireguard-go device on tunDev and bind (nil: the
// default bind) with the edge as its peer. The device owns tunDev and bind
// from then on: Close closes them.
func startDevice(tunDev *tunView, bind conn.Bind, k key, edge model.EdgePeer, pmc pathMTUConfig, log *slog.Logger) (*wgDevice, error) {
	logger := &device.Logger{
		Verbosef: func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) },
		Errorf:   func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) },
	}
	// Outer datagrams may fragment on a small underlay; path MTU probes go
	// with DF on the same socket (transport/wireguard's ProbeBind).
	pb := wireguard.NewProbeBind(bind)
	pm := &pathMTU{bind: pb, priv: wireguard.PrivateKey(k.private), pmc: pmc, view: tunDev,
		log: log.With("component", "pathmtu")}
	if pm.pmc.mtu == 0 {
		pm.pmc.mtu = tunDev.MTUOrZero()
	}
	d := &wgDevice{dev: device.NewDevice(tunDev, pb, logger), pm: pm}
	d.ipc = d.dev
	if err := d.ipc.IpcSet("private_key=" + hexKey(k.private[:]) + "\n"); err != nil {
		d.dev.Close()
		return nil, fmt.Errorf("configure WireGuard device: %w", err)
	}
	if err := d.setEdge(edge); err != nil {
		d.dev.Close()
		return nil, err
	}
	if err := d.dev.Up(); err != nil {
		d.dev.Close()
		return nil, fmt.Errorf("bring WireGuard device up: %w", err)
	}
	return d, nil
}

// setEdge (re)configures the edge peer: its key, endpoint, and every address
// as allowed (the edge decides what may come through; the host's routes
// decide what goes in).
func (d *wgDevice) setEdge(edge model.EdgePeer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.setEdgeLocked(edge)
}

// restart drops the edge peer's session and adds the peer back, so the next
// packet starts a handshake at once: after an edge restart the old session is
// gone at the edge, and wireguard-go alone would wait up to 15 s to notice.
func (d *wgDevice) restart() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pair != nil {
		return d.restartPeerLocked(d.on)
	}
	edge := d.edge
	d.edge = model.EdgePeer{}
	return d.setEdgeLocked(edge)
}

func (d *wgDevice) setEdgeLocked(edge model.EdgePeer) error {
	if d.pair == nil && d.edge.Endpoint == edge.Endpoint && d.edge.PublicKey == edge.PublicKey {
		return nil
	}
	pub, err := base64.StdEncoding.DecodeString(edge.PublicKey)
	if err != nil || len(pub) != 32 {
		return fmt.Errorf("edge public key %q is not a base64 WireGuard key", edge.PublicKey)
	}
	ep, err := wireguard.ResolveEndpoint(edge.Endpoint)
	if err != nil {
		return fmt.Errorf("resolve edge endpoint %q: %w", edge.Endpoint, err)
	}
	var b strings.Builder
	b.WriteString("replace_peers=true\n")
	fmt.Fprintf(&b, "public_key=%s\n", hexKey(pub))
	fmt.Fprintf(&b, "endpoint=%s\n", ep)
	fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(model.KeepaliveInterval/time.Second))
	b.WriteString("replace_allowed_ips=true\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0\n")
	if err := d.ipc.IpcSet(b.String()); err != nil {
		return fmt.Errorf("configure edge peer %s at %s: %w", edge.PublicKey, edge.Endpoint, err)
	}
	d.edge, d.pair, d.on = edge, nil, 0
	d.pm.sync(map[string]string{edge.PublicKey: edge.Endpoint}, edge.PublicKey)
	return nil
}

// Close stops the probes and the device and closes its TUN.
func (d *wgDevice) Close() {
	d.pm.close()
	d.dev.Close()
}

// lastHandshake is when the device last completed a handshake with the
// edge; zero if never.
func (d *wgDevice) lastHandshake() time.Time {
	get, err := d.ipc.IpcGet()
	if err != nil {
		return time.Time{}
	}
	var sec, nsec int64
	for _, line := range strings.Split(get, "\n") {
		if v, ok := strings.CutPrefix(line, "last_handshake_time_sec="); ok {
			sec, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "last_handshake_time_nsec="); ok {
			nsec, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if sec == 0 && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, nsec)
}
