package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// listEdges answers GET /v1/edges.
func (s *Server) listEdges(r *http.Request) (any, error) {
	if s.opts.Edges == nil {
		return []model.Edge{{Name: "edge", API: s.opts.Edge.API, WireGuard: s.opts.Edge.Endpoint, MASQUE: s.opts.Edge.MASQUE, Healthy: true}}, nil
	}
	return s.opts.Edges(r.Context())
}

// peerAPIsTTL is how long the other edges' API addresses are reused for
// tokens and agent configurations before they are listed again.
const peerAPIsTTL = 2 * time.Second

// peerAPIs caches the API addresses of the cluster's other healthy edges,
// and every healthy edge as an agent reaches it.
type peerAPIs struct {
	mu    sync.Mutex
	at    time.Time
	gen   <-chan struct{} // Options.EdgesChanged when the list was read: closed, it is stale
	list  []string
	edges []model.ClusterEdge // this edge first
}

// otherAPIs returns the API addresses of the cluster's other healthy edges,
// in the cluster's order: what tokens and agent configurations name besides
// this edge, so that agents can turn to another edge. It is nil for a single
// edge, and the last known list when the cluster cannot be listed.
func (s *Server) otherAPIs(ctx context.Context) []string {
	list, _ := s.clusterPeers(ctx)
	return list
}

// clusterPeers returns otherAPIs, and the cluster's healthy edges as agents
// reach them (this edge first, then in the cluster's order), from one
// listing that is reused for peerAPIsTTL. Both are nil for a single edge,
// and the last known lists when the cluster cannot be listed.
func (s *Server) clusterPeers(ctx context.Context) ([]string, []model.ClusterEdge) {
	if s.opts.Edges == nil {
		return nil, nil
	}
	c := &s.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < peerAPIsTTL && !closed(c.gen) {
		return c.list, c.edges
	}
	gen := s.edgesChanged() // before the listing: a change during it makes the list stale
	edges, err := s.opts.Edges(ctx)
	if err != nil {
		s.log.Warn("listing the cluster's edges for agents", "err", err)
		return c.list, c.edges
	}
	var list []string
	var peers []model.ClusterEdge
	for _, e := range edges {
		if !e.Healthy {
			continue
		}
		if e.API != "" && e.API != s.opts.Edge.API {
			list = append(list, e.API)
		}
		if e.WireGuard == "" || e.PublicKey == "" {
			continue // registered by an edge older than per-edge keys
		}
		p := model.ClusterEdge{Name: e.Name, Endpoint: e.WireGuard, PublicKey: e.PublicKey, MASQUE: e.MASQUE,
			Heartbeat: e.Heartbeat, Heartbeat6: e.Heartbeat6}
		if e.PublicKey == s.opts.Edge.EdgeKey { // this edge: each edge has a key of its own
			peers = append([]model.ClusterEdge{p}, peers...)
		} else {
			peers = append(peers, p)
		}
	}
	if len(peers) < 2 {
		peers = nil // nothing to choose from: the configuration stays a single edge's
	}
	c.at, c.gen, c.list, c.edges = time.Now(), gen, list, peers
	return list, peers
}

// edgesChanged is Options.EdgesChanged's channel; nil (never ready) without
// the hook.
func (s *Server) edgesChanged() <-chan struct{} {
	if s.opts.EdgesChanged == nil {
		return nil
	}
	return s.opts.EdgesChanged()
}

// closed reports whether ch is closed; a nil ch never is.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// edgePeer is the edge as an agent's configuration describes it: this edge's
// endpoints, and every healthy edge's API address and WireGuard peer, this
// one first.
func (s *Server) edgePeer(ctx context.Context) model.EdgePeer {
	p := model.EdgePeer{Endpoint: s.opts.Edge.Endpoint, PublicKey: s.opts.Edge.EdgeKey, MASQUE: s.opts.Edge.MASQUE}
	others, edges := s.clusterPeers(ctx)
	if len(others) > 0 {
		p.APIs = append([]string{s.opts.Edge.API}, others...)
	}
	p.Edges = edges
	return p
}
