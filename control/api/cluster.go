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

// peerAPIs caches the API addresses of the cluster's other healthy edges.
type peerAPIs struct {
	mu   sync.Mutex
	at   time.Time
	list []string
}

// otherAPIs returns the API addresses of the cluster's other healthy edges,
// in the cluster's order: what tokens and agent configurations name besides
// this edge, so that agents can turn to another edge. It is nil for a single
// edge, and the last known list when the cluster cannot be listed.
func (s *Server) otherAPIs(ctx context.Context) []string {
	if s.opts.Edges == nil {
		return nil
	}
	c := &s.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < peerAPIsTTL {
		return c.list
	}
	edges, err := s.opts.Edges(ctx)
	if err != nil {
		s.log.Warn("listing the cluster's edges for agents", "err", err)
		return c.list
	}
	var list []string
	for _, e := range edges {
		if e.Healthy && e.API != "" && e.API != s.opts.Edge.API {
			list = append(list, e.API)
		}
	}
	c.at, c.list = time.Now(), list
	return list
}

// edgePeer is the edge as an agent's configuration describes it: this edge's
// endpoints, and every healthy edge's API address, this one first.
func (s *Server) edgePeer(ctx context.Context) model.EdgePeer {
	p := model.EdgePeer{Endpoint: s.opts.Edge.Endpoint, PublicKey: s.opts.Edge.EdgeKey, MASQUE: s.opts.Edge.MASQUE}
	if others := s.otherAPIs(ctx); len(others) > 0 {
		p.APIs = append([]string{s.opts.Edge.API}, others...)
	}
	return p
}
