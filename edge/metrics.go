package edge

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/router"
)

// applied is what the data plane last applied, for metrics.
type applied struct {
	rev    int64
	at     time.Time
	took   time.Duration  // building the tables
	lag    time.Duration  // from the change feed delivering the first change it covers
	routes map[string]int // by vnet name
}

// noteChange records when the change feed delivered a change that is not
// applied yet.
func (d *dataplane) noteChange() {
	d.changedAt.CompareAndSwap(0, time.Now().UnixNano())
}

// noteApplied records a snapshot the data plane applied at start.
func (d *dataplane) noteApplied(s registry.Snapshot, start time.Time) {
	a := &applied{rev: s.Rev, at: time.Now(), took: time.Since(start), routes: map[string]int{}}
	if since := d.changedAt.Swap(0); since != 0 {
		a.lag = time.Duration(a.at.UnixNano() - since)
	}
	names := map[[16]byte]string{}
	for _, v := range s.VNets {
		names[v.ID] = v.Name
		a.routes[v.Name] = 0
	}
	for _, rt := range s.Routes {
		a.routes[names[rt.VNetID]]++
	}
	d.applied.Store(a)
}

// samples are the edge's metrics, read at scrape time.
func (d *dataplane) samples() []metrics.Sample {
	st := d.router.Stats()
	wg := d.ep.Stats()
	c := func(name, help string, v uint64, labels ...string) metrics.Sample {
		return metrics.Sample{Name: "switchyard_edge_" + name, Help: help, Counter: true, Value: float64(v), Labels: labels}
	}
	g := func(name, help string, v float64, labels ...string) metrics.Sample {
		return metrics.Sample{Name: "switchyard_edge_" + name, Help: help, Value: v, Labels: labels}
	}
	out := []metrics.Sample{
		c("packets_total", "IP packets by direction: in from peers, out forwarded to peers.", st.Received, "direction", "in"),
		c("packets_total", "IP packets by direction: in from peers, out forwarded to peers.", st.Forwarded, "direction", "out"),
		c("bytes_total", "IP bytes by direction.", st.ReceivedBytes, "direction", "in"),
		c("bytes_total", "IP bytes by direction.", st.ForwardedBytes, "direction", "out"),
		c("icmp_errors_total", "ICMP errors and TCP resets the edge generated.", st.Replied),
		c("fragmented_total", "IPv4 packets without DF forwarded as fragments, larger than their destination session's MTU.", st.Fragmented),
		c("handshakes_total", "WireGuard handshakes by event.", wg.HandshakesCompleted, "event", "completed"),
		c("handshakes_total", "WireGuard handshakes by event.", wg.HandshakesInitiated, "event", "initiated"),
		c("policy_decisions_total", "Policy decisions on new flows and re-evaluations, by action.", st.Policy.Allowed, "action", "allow"),
		c("policy_decisions_total", "Policy decisions on new flows and re-evaluations, by action.", st.Policy.Blocked, "action", "block"),
		g("policy_rules", "Network policy rules in force.", float64(st.Policy.Rules)),
		g("flows", "Flows in the flow table.", float64(st.Policy.Flows)),
		c("flow_evictions_total", "Flows evicted from the full flow table.", st.Policy.FlowEvictions),
		c("flow_log_lost_total", "Flow log events dropped because the writer fell behind.", d.flows.lost.Load()),
		c("heartbeats_total", "Heartbeat probes answered.", d.heartbeats.Load()),
		c("sent_to_missed_replica_total", "Packets forwarded to a replica that missed its heartbeats, as its tunnel had no other replica up.", d.sentMissed.Load()),
	}
	drop := func(layer, reason string, v uint64) {
		out = append(out, c("drops_total", "Dropped packets by layer and reason.", v, "layer", layer, "reason", reason))
	}
	for reason, v := range st.Dropped {
		drop("router", reason, v)
	}
	for reason, v := range map[string]uint64{
		"malformed": wg.DroppedMalformed, "replay": wg.DroppedReplay, "auth": wg.DroppedAuth, "unknown_index": wg.DroppedUnknownIndex,
		"expired": wg.DroppedExpired, "mac1": wg.DroppedMAC1, "unauthorized": wg.DroppedUnauthorized,
		"rate_limited": wg.DroppedRateLimited, "queue_full": wg.DroppedQueueFull, "no_session": wg.DroppedNoSession,
		"probe": wg.DroppedProbe,
	} {
		drop("wireguard", reason, v)
	}
	type kind struct {
		kind      router.Kind
		transport string
	}
	out = append(out, c("path_mtu_probes_answered_total", "Path MTU probes from agents the edge answered (ACK and RPROBE).", wg.ProbesAnswered))
	type mtuKey struct {
		kind      router.Kind
		direction string
		mtu       int
	}
	mtus := map[mtuKey]int{}
	up := map[kind]int{}
	for _, k := range []router.Kind{router.Connector, router.Client} {
		up[kind{k, "wireguard"}], up[kind{k, "masque"}] = 0, 0
	}
	d.mu.Lock()
	for _, ss := range d.agents {
		for _, s := range ss {
			if s.peer.Up() {
				up[kind{s.peer.Kind, s.link.transport()}]++
				if m := s.pathMTU(); m != nil {
					mtus[mtuKey{s.peer.Kind, "agent_to_edge", m.AgentToEdge}]++
					mtus[mtuKey{s.peer.Kind, "edge_to_agent", m.EdgeToAgent}]++
				}
			}
		}
	}
	trunks := d.trunkStatsLocked()
	d.mu.Unlock()
	for _, t := range trunks {
		out = append(out,
			c("trunk_packets_total", "Inner IP packets over each trunk to another edge, by direction.", t.PacketsIn, "edge", t.Edge, "direction", "in"),
			c("trunk_packets_total", "Inner IP packets over each trunk to another edge, by direction.", t.PacketsOut, "edge", t.Edge, "direction", "out"),
			c("trunk_bytes_total", "Inner IP bytes over each trunk to another edge, by direction.", t.BytesIn, "edge", t.Edge, "direction", "in"),
			c("trunk_bytes_total", "Inner IP bytes over each trunk to another edge, by direction.", t.BytesOut, "edge", t.Edge, "direction", "out"),
			c("trunk_drops_total", "Packets a trunk could not carry: a bad header or a vnet not trunked.", t.Dropped, "edge", t.Edge))
	}
	for k, n := range up {
		out = append(out, g("sessions", "Live sessions by kind and transport.", float64(n), "kind", k.kind.String(), "transport", k.transport))
	}
	for k, n := range mtus {
		out = append(out, g("sessions_path_mtu", "Live WireGuard sessions by the inner MTU their path MTU discovery found, per direction (mtu 0: probing or not probed).",
			float64(n), "kind", k.kind.String(), "direction", k.direction, "mtu", strconv.Itoa(k.mtu)))
	}
	if a := d.applied.Load(); a != nil {
		for vnet, n := range a.routes {
			out = append(out, g("routes", "Routes by virtual network.", float64(n), "vnet", vnet))
		}
		out = append(out,
			g("applied_revision", "Store revision the data plane runs on.", float64(a.rev)),
			g("apply_seconds", "Time the data plane took to apply its latest snapshot.", a.took.Seconds()),
			g("propagation_lag_seconds", "Time from the change feed delivering a change to the data plane running on it, for the latest change.", a.lag.Seconds()),
			g("applied_timestamp_seconds", "When the data plane applied its latest snapshot.", float64(a.at.UnixNano())/1e9))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if rev, err := d.reg.Rev(ctx); err == nil {
			out = append(out,
				g("store_revision", "Current store revision.", float64(rev)),
				g("propagation_lag_revisions", "Store revisions the data plane has not applied yet.", float64(rev-a.rev)))
		}
	}
	return out
}

// serveMetrics serves /metrics on addr until ctx ends.
func (d *dataplane) serveMetrics(ctx context.Context, ln net.Listener) {
	if err := metrics.Serve(ctx, ln, d.log, metrics.Func(d.samples)); err != nil {
		d.log.Error("metrics server stopped", "err", err)
	}
}
