package agent

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// DefaultEdges is how many edges of a cluster an agent keeps sessions to
// unless --edges says otherwise: one active, one standby.
const DefaultEdges = 2

// pickEdges returns the edges of a cluster an agent keeps sessions to: its
// home edge (see below) if the configuration lists it, then the first of
// the others in the configuration's order (the edge that answered first,
// then the cluster's order), n in all, of those that have addresses of
// their own to probe them at. It is nil, and the agent holds one session to
// edge as before, for a single edge, n < 2, or fewer than two such edges.
//
// The home edge is the agent's stable preference: the edge that answered
// its first configuration (the first API its token names, unless that edge
// was down), identified by its WireGuard key, for as long as the agent
// runs. It is kept in the pair whenever it is listed, so that an agent
// that failed over to another edge returns to it (hostTunnel.failback)
// once it is back and its heartbeats have been answered for failbackHold;
// agents so spread over the edges the way their tokens do, and do not
// drift to whichever edge survived the last failure.
func pickEdges(edge model.EdgePeer, n int, home string) []model.ClusterEdge {
	if n < 2 {
		return nil
	}
	usable := func(e model.ClusterEdge) bool {
		return e.Heartbeat.IsValid() && e.Heartbeat6.IsValid() && e.PublicKey != "" && e.Endpoint != ""
	}
	var out []model.ClusterEdge
	for _, e := range edge.Edges {
		if e.PublicKey == home && usable(e) { // never "": usable edges have a key
			out = append(out, e)
		}
	}
	for _, e := range edge.Edges {
		if len(out) < n && e.PublicKey != home && usable(e) {
			out = append(out, e)
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

// keepActive returns the index in pair of the edge that was active (cur of
// old), so that a new list keeps the agent where it is; 0 if it is gone.
func keepActive(old []model.ClusterEdge, cur int, pair []model.ClusterEdge) int {
	if cur < 0 || cur >= len(old) {
		return 0
	}
	for i, e := range pair {
		if e.PublicKey == old[cur].PublicKey {
			return i
		}
	}
	return 0
}

// allowedIPs is what a peer of the pair may carry: everything for the
// active edge, the edge's own heartbeat addresses for a standby.
func allowedIPs(e model.ClusterEdge, active bool) []netip.Prefix {
	if active {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	var out []netip.Prefix
	for _, a := range []netip.Addr{e.Heartbeat, e.Heartbeat6} {
		if a.IsValid() {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// soleEdge is the one edge a configuration names when it lists no pair
// (the cluster's other edges are down) for an agent that held a pair: the
// pair's entry for it if it was one (so that it keeps its name and own
// addresses, and its session), else one made from the configuration.
func soleEdge(edge model.EdgePeer, pair []model.ClusterEdge) model.ClusterEdge {
	for _, e := range pair {
		if e.PublicKey == edge.PublicKey {
			return e
		}
	}
	return model.ClusterEdge{Endpoint: edge.Endpoint, PublicKey: edge.PublicKey, MASQUE: edge.MASQUE}
}

// writeAllowed writes the UAPI lines that replace the AllowedIPs of e's
// peer (selected by public_key).
func writeAllowed(b *strings.Builder, e model.ClusterEdge, active bool) error {
	pub, err := base64.StdEncoding.DecodeString(e.PublicKey)
	if err != nil || len(pub) != 32 {
		return fmt.Errorf("edge %s: public key %q is not a base64 WireGuard key", e.Name, e.PublicKey)
	}
	fmt.Fprintf(b, "public_key=%s\nreplace_allowed_ips=true\n", hexKey(pub))
	for _, p := range allowedIPs(e, active) {
		fmt.Fprintf(b, "allowed_ip=%s\n", p)
	}
	return nil
}

// writePeer writes the UAPI lines of e's whole peer: key, endpoint,
// keepalive and AllowedIPs.
func writePeer(b *strings.Builder, e model.ClusterEdge, active bool) error {
	ep, err := wireguard.ResolveEndpoint(e.Endpoint)
	if err != nil {
		return fmt.Errorf("resolve the endpoint %q of edge %s: %w", e.Endpoint, e.Name, err)
	}
	if err := writeAllowed(b, e, active); err != nil {
		return err
	}
	fmt.Fprintf(b, "endpoint=%s\n", ep)
	fmt.Fprintf(b, "persistent_keepalive_interval=%d\n", int(model.KeepaliveInterval/time.Second))
	return nil
}

// setPair makes the device's peers the edges of pair, pair[on] the active
// one; nothing changes if they already are. Peers that stay keep their
// sessions (only their settings are written again): the active edge's
// first, so that it takes everything before another lets go of it; peers
// of edges no longer listed go last.
func (d *wgDevice) setPair(pair []model.ClusterEdge, on int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.Equal(d.pair, pair) && d.on == on {
		return nil
	}
	var old []string // the keys of the peers the device has
	for _, e := range d.pair {
		old = append(old, e.PublicKey)
	}
	if d.pair == nil && d.edge.PublicKey != "" {
		old = []string{d.edge.PublicKey}
	}
	var b strings.Builder
	if len(old) == 0 {
		b.WriteString("replace_peers=true\n")
	}
	order := append([]int{on}, slices.DeleteFunc(rangeN(len(pair)), func(i int) bool { return i == on })...)
	for _, i := range order {
		if err := writePeer(&b, pair[i], i == on); err != nil {
			return err
		}
	}
	for _, k := range old {
		if slices.ContainsFunc(pair, func(e model.ClusterEdge) bool { return e.PublicKey == k }) {
			continue
		}
		pub, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(pub) != 32 {
			continue
		}
		fmt.Fprintf(&b, "public_key=%s\nremove=true\n", hexKey(pub))
	}
	if err := d.ipc.IpcSet(b.String()); err != nil {
		return fmt.Errorf("configure the edge peers: %w", err)
	}
	d.pair, d.on, d.edge = slices.Clone(pair), on, model.EdgePeer{}
	d.syncProbesLocked()
	return nil
}

// rangeN returns 0, 1, ..., n-1.
func rangeN(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// swap makes pair[to] the active edge in one IpcSet: the new active peer
// takes everything first (wireguard-go moves 0.0.0.0/0 and ::/0 from the
// old one as it inserts them, so no packet finds no peer), then the old one
// keeps only its edge's own addresses.
func (d *wgDevice) swap(to int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pair == nil || to < 0 || to >= len(d.pair) {
		return fmt.Errorf("swap to edge %d: the device has %d edge peers", to, len(d.pair))
	}
	if to == d.on {
		return nil
	}
	var b strings.Builder
	if err := writeAllowed(&b, d.pair[to], true); err != nil {
		return err
	}
	if err := writeAllowed(&b, d.pair[d.on], false); err != nil {
		return err
	}
	if err := d.ipc.IpcSet(b.String()); err != nil {
		return fmt.Errorf("move the traffic to edge %s: %w", d.pair[to].Name, err)
	}
	d.on = to
	d.syncProbesLocked()
	return nil
}

// restartPeer drops the session with pair[i] and adds its peer back, so
// that the next packet starts a handshake at once (see restart).
func (d *wgDevice) restartPeer(i int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.restartPeerLocked(i)
}

func (d *wgDevice) restartPeerLocked(i int) error {
	if i < 0 || i >= len(d.pair) {
		return nil
	}
	e := d.pair[i]
	pub, err := base64.StdEncoding.DecodeString(e.PublicKey)
	if err != nil {
		return fmt.Errorf("edge %s: public key %q is not a base64 WireGuard key", e.Name, e.PublicKey)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "public_key=%s\nremove=true\n", hexKey(pub))
	if err := writePeer(&b, e, i == d.on); err != nil {
		return err
	}
	if err := d.ipc.IpcSet(b.String()); err != nil {
		return fmt.Errorf("restart the session with edge %s: %w", e.Name, err)
	}
	return nil
}

// syncProbesLocked probes every edge of the pair, the active one's result
// applying; d.mu must be held.
func (d *wgDevice) syncProbesLocked() {
	edges := make(map[string]string, len(d.pair))
	for _, e := range d.pair {
		edges[e.PublicKey] = e.Endpoint
	}
	d.pm.sync(edges, d.pair[d.on].PublicKey)
}
