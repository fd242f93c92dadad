package agent

import (
	"encoding/base64"
	"log/slog"
	"os"
	"sync"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// pathMTUEnv, set to "off", turns path MTU probing off (the e2e tests'
// seam to show that their MTU checks can fail).
const pathMTUEnv = "SWITCHYARD_PATH_MTU"

// minIPv6MTU is the smallest MTU of a link that carries IPv6: Linux turns
// IPv6 off on a link with a smaller one, so the TUN never goes below it.
const minIPv6MTU = 1280

// pathMTU (nil in tests of the peer configuration: none) runs the path MTU probes of a WireGuard device's edge sessions
// (transport/wireguard's Prober, one per edge) and applies the active
// edge's result: the TUN's MTU and the wireguard-go device's padding MTU
// from the agent→edge direction, the MSS clamp from the smaller of both.
// A standby keeps its own result until it becomes active. The edge applies
// the edge→agent result, which every probe reports to it.
type pathMTU struct {
	bind *wireguard.ProbeBind
	priv wireguard.PrivateKey
	pmc  pathMTUConfig // pmc.mtu, the edge's configured inner MTU, is the ceiling
	view *tunView      // the device's view: its MTU is the padding cap
	log  *slog.Logger

	mu      sync.Mutex
	probers map[string]*edgeProber // by the edge's base64 key
	active  string
	applied [2]int
}

// edgeProber is one edge's prober and the endpoint it probes.
type edgeProber struct {
	endpoint string
	p        *wireguard.Prober
}

// probingOff reports whether the environment turns probing off.
func probingOff() bool { return os.Getenv(pathMTUEnv) == "off" }

// sync makes the probers those of edges (key → endpoint), active the one
// whose result applies.
func (m *pathMTU) sync(edges map[string]string, active string) {
	if m == nil {
		return // a device of tests
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.probers == nil {
		m.probers = map[string]*edgeProber{}
	}
	for k, ep := range m.probers {
		if edges[k] != ep.endpoint {
			ep.p.Close()
			delete(m.probers, k)
		}
	}
	if !probingOff() {
		for k, endpoint := range edges {
			if m.probers[k] != nil {
				continue
			}
			pub, err := base64.StdEncoding.DecodeString(k)
			if err != nil || len(pub) != wireguard.KeySize {
				continue
			}
			ep, err := wireguard.ResolveEndpoint(endpoint)
			if err != nil {
				m.log.Warn("starting path MTU probes", "edge", k, "err", err)
				continue
			}
			p, err := m.bind.StartProber(wireguard.ProberConfig{Agent: m.priv, Edge: wireguard.PublicKey(pub),
				Endpoint: ep.String(),
				MTU:      m.pmc.mtu, Logger: m.log, OnChange: func(wireguard.PathMTU) { go m.applyActive() }})
			if err != nil {
				m.log.Warn("starting path MTU probes", "edge", k, "err", err)
				continue
			}
			m.probers[k] = &edgeProber{endpoint: endpoint, p: p}
		}
	}
	m.active = active
	m.applyLocked()
}

// applyActive applies the active edge's result.
func (m *pathMTU) applyActive() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applyLocked()
}

func (m *pathMTU) applyLocked() {
	r := m.resultLocked()
	fwd, rev := m.pmc.mtu, m.pmc.mtu
	if r.Forward > 0 {
		fwd = min(fwd, r.Forward)
	}
	if r.Reverse > 0 {
		rev = min(rev, r.Reverse)
	}
	want := [2]int{fwd, min(fwd, rev)}
	if want == m.applied {
		return
	}
	m.pmc.applyInner(m.view, fwd, want[1])
	m.applied = want
}

func (m *pathMTU) resultLocked() wireguard.PathMTU {
	if ep := m.probers[m.active]; ep != nil {
		return ep.p.PathMTU()
	}
	return wireguard.PathMTU{}
}

// status is the active session's result for connector status.
func (m *pathMTU) status() *localapi.PathMTU {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.probers[m.active] == nil {
		return &localapi.PathMTU{State: localapi.PathMTUNotProbed}
	}
	r := m.resultLocked()
	st := &localapi.PathMTU{AgentToEdge: r.Forward, EdgeToAgent: r.Reverse, State: localapi.PathMTUDone}
	if r.Forward == 0 || r.Reverse == 0 {
		st.State = localapi.PathMTUProbing
	}
	return st
}

// kick searches every session again (its heartbeats came back).
func (m *pathMTU) kick() {
	if m == nil {
		return // a device of tests
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ep := range m.probers {
		ep.p.Kick()
	}
}

// close stops every prober.
func (m *pathMTU) close() {
	if m == nil {
		return // a device of tests
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, ep := range m.probers {
		ep.p.Close()
		delete(m.probers, k)
	}
}
