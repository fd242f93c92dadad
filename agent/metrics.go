package agent

import (
	"bufio"
	"context"
	"fmt"
	"github.com/switchyard/switchyard/control/model"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/internal/metrics"
)

// serveMetrics serves the agent's Prometheus /metrics on addr, with the
// samples of more (the client's DNS), until the returned stop is called
// (stop waits for the server to end).
func (h *hostTunnel) serveMetrics(ctx context.Context, addr, role string, more ...func() []metrics.Sample) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := metrics.Serve(ctx, ln, h.log, metrics.Func(func() []metrics.Sample {
			s := h.samples(role)
			for _, m := range more {
				s = append(s, m()...)
			}
			return s
		})); err != nil {
			h.log.Error("metrics server stopped", "err", err)
		}
	})
	return func() { cancel(); wg.Wait() }, nil
}

// samples reads the link's counters: the WireGuard device's for the edge
// peer while the link runs over WireGuard.
func (h *hostTunnel) samples(role string) []metrics.Sample {
	transport, conf := h.link.stats()
	var rx, tx, hsSec, hsNsec float64
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		f, _ := strconv.ParseFloat(v, 64)
		switch k {
		case "rx_bytes":
			rx += f
		case "tx_bytes":
			tx += f
		case "last_handshake_time_sec":
			hsSec = f
		case "last_handshake_time_nsec":
			hsNsec = f
		}
	}
	labels := func(more ...string) []string { return append([]string{"role", role, "tun", h.name}, more...) }
	var pm model.PathMTU
	if p := h.pathMTUStatus(); p != nil {
		pm = *p
	}
	return []metrics.Sample{
		{Name: "switchyard_agent_path_mtu_bytes", Help: "The inner MTU path MTU discovery found on the active WireGuard session, by direction (0: probing, not probed, or MASQUE).", Value: float64(pm.AgentToEdge), Labels: labels("direction", "agent_to_edge")},
		{Name: "switchyard_agent_path_mtu_bytes", Help: "The inner MTU path MTU discovery found on the active WireGuard session, by direction (0: probing, not probed, or MASQUE).", Value: float64(pm.EdgeToAgent), Labels: labels("direction", "edge_to_agent")},
		{Name: "switchyard_agent_transport", Help: "The transport the agent reaches the edge over (1 for the one in use).", Value: 1, Labels: labels("transport", transport)},
		{Name: "switchyard_agent_bytes_total", Help: "WireGuard bytes exchanged with the edge, by direction.", Counter: true, Value: rx, Labels: labels("direction", "in")},
		{Name: "switchyard_agent_bytes_total", Help: "WireGuard bytes exchanged with the edge, by direction.", Counter: true, Value: tx, Labels: labels("direction", "out")},
		{Name: "switchyard_agent_last_handshake_timestamp_seconds", Help: "When the latest WireGuard handshake with the edge completed (0: never).", Value: hsSec + hsNsec/1e9, Labels: labels()},
		{Name: "switchyard_agent_masque_shrink_redials_total", Help: "MASQUE sessions closed and redialed because their path stopped carrying full-size packets.", Counter: true, Value: float64(h.link.shrinks.Load()), Labels: labels()},
		{Name: "switchyard_agent_routes", Help: "Host routes into the tunnel.", Value: float64(h.routes.Load()), Labels: labels()},
		{Name: "switchyard_agent_config_applies_total", Help: "Configurations from the edge applied to the host.", Counter: true, Value: float64(h.applies.Load()), Labels: labels()},
	}
}

// stats names the transport in use and, for WireGuard, returns the device's
// configuration with its counters (the UAPI get format).
func (l *link) stats() (transport, wgConf string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.wg != nil:
		conf, err := l.wg.dev.IpcGet()
		if err != nil {
			return "wireguard", ""
		}
		return "wireguard", conf
	case l.ms != nil:
		return "masque", ""
	}
	return "none", ""
}
