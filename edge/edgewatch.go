package edge

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// edgeWatch tells the API's configuration long polls when the cluster's
// healthy edges change, so that agents learn of an edge that registers
// (returns) or lapses within one etcd watch event rather than at their
// poll's timeout. It follows the edges' liveness keys (prefix "a/": put
// when an edge registers, gone when it withdraws or its lease expires),
// not their records, which every keepalive rewrites.
type edgeWatch struct {
	mu sync.Mutex
	ch chan struct{} // closed at the next change
}

// newEdgeWatch returns a watch with no change yet; follow feeds it.
func newEdgeWatch() *edgeWatch { return &edgeWatch{ch: make(chan struct{})} }

// changed returns a channel that is closed at the next change.
func (w *edgeWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// bump ends the current wait: every channel changed returned so far closes.
func (w *edgeWatch) bump() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

// edgeWatchRetry is how long follow waits before watching again after
// etcd ended its watch (no leader, a compaction).
const edgeWatchRetry = 500 * time.Millisecond

// follow bumps w at every change of the liveness keys under prefix until
// ctx ends. A watch that ends is opened again, with a bump, since changes
// may have been missed meanwhile.
func (w *edgeWatch) follow(ctx context.Context, cli *clientv3.Client, prefix string) {
	for ctx.Err() == nil {
		for resp := range cli.Watch(clientv3.WithRequireLeader(ctx), prefix+"a/", clientv3.WithPrefix()) {
			if resp.Err() != nil {
				break
			}
			if len(resp.Events) > 0 {
				w.bump()
			}
		}
		if ctx.Err() != nil {
			return
		}
		w.bump()
		select {
		case <-ctx.Done():
		case <-time.After(edgeWatchRetry):
		}
	}
}
