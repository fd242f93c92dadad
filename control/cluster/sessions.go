package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/control/model"
)

// The session registry: every edge records the agent sessions it holds under
// PREFIX s/EDGE/KEY, all bound to one lease of SessionTTL that the edge keeps
// alive, so that an edge that dies loses its records within SessionTTL and a
// clean stop withdraws them at once (it revokes the lease). Every edge
// follows the whole registry (FollowSessions) and so knows, for every
// destination, which edge holds its session.

// SessionTTL is the lease of an edge's session records.
const SessionTTL = 2 * time.Second

// maxTxnOps bounds the operations of one etcd transaction (etcd's default
// limit is 128).
const maxTxnOps = 128

func sessionsPrefix(prefix string) string { return prefix + "s/" }

// SessionPublisher keeps one edge's sessions in the registry. Set and Remove
// never block: the publisher writes what changed in the background, in
// batches, and puts every record back after etcd lost its lease.
type SessionPublisher struct {
	cli    *clientv3.Client
	prefix string // PREFIX s/EDGE/
	log    *slog.Logger

	mu    sync.Mutex
	want  map[string]model.Session // the records as they should be, by key
	dirty map[string]bool          // keys whose record (or absence) is not written yet
	lease clientv3.LeaseID
	kick  chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

// PublishSessions starts the publisher of edge's sessions.
func PublishSessions(ctx context.Context, cli *clientv3.Client, prefix, edge string, log *slog.Logger) (*SessionPublisher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &SessionPublisher{cli: cli, prefix: sessionsPrefix(prefix) + edge + "/", log: log,
		want: map[string]model.Session{}, dirty: map[string]bool{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	// Records of an earlier run of this edge (a crash) are not ours to keep.
	if _, err := cli.Delete(ctx, p.prefix, clientv3.WithPrefix()); err != nil {
		return nil, fmt.Errorf("session registry of edge %s: %w", edge, err)
	}
	if err := p.grant(ctx); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(rctx)
	return p, nil
}

// Set records (or updates) the session under key, which names it within
// this edge.
func (p *SessionPublisher) Set(key string, s model.Session) {
	p.mu.Lock()
	if old, ok := p.want[key]; !ok || old != s {
		p.want[key] = s
		p.dirty[key] = true
	}
	p.mu.Unlock()
	p.poke()
}

// Remove withdraws the session under key.
func (p *SessionPublisher) Remove(key string) {
	p.mu.Lock()
	if _, ok := p.want[key]; ok {
		delete(p.want, key)
		p.dirty[key] = true
	}
	p.mu.Unlock()
	p.poke()
}

func (p *SessionPublisher) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Close withdraws every record at once and stops.
func (p *SessionPublisher) Close() error {
	p.cancel()
	<-p.done
	p.mu.Lock()
	lease := p.lease
	p.mu.Unlock()
	return revoke(p.cli, lease)
}

func (p *SessionPublisher) grant(ctx context.Context) error {
	l, err := p.cli.Grant(ctx, int64(SessionTTL/time.Second))
	if err != nil {
		return fmt.Errorf("session registry: grant lease: %w", err)
	}
	p.mu.Lock()
	p.lease = l.ID
	for k := range p.want { // a new lease: every record again
		p.dirty[k] = true
	}
	p.mu.Unlock()
	return nil
}

// run writes changes as they come and renews the lease three times per TTL;
// a lost lease (etcd away for longer than the TTL) is granted anew.
func (p *SessionPublisher) run(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(SessionTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := p.keepAlive(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("session registry lease not renewed", "err", err)
				continue
			}
		case <-p.kick:
		}
		if err := p.flush(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("session registry not updated; retrying", "err", err)
		}
	}
}

func (p *SessionPublisher) keepAlive(ctx context.Context) error {
	p.mu.Lock()
	lease := p.lease
	p.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, SessionTTL/3)
	defer cancel()
	_, err := p.cli.KeepAliveOnce(cctx, lease)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return p.grant(cctx)
	}
	return err
}

// flush writes the dirty records in transactions of at most maxTxnOps.
func (p *SessionPublisher) flush(ctx context.Context) error {
	for {
		p.mu.Lock()
		var ops []clientv3.Op
		var keys []string
		for k := range p.dirty {
			if len(ops) == maxTxnOps {
				break
			}
			if s, ok := p.want[k]; ok {
				buf, _ := json.Marshal(s)
				ops = append(ops, clientv3.OpPut(p.prefix+k, string(buf), clientv3.WithLease(p.lease)))
			} else {
				ops = append(ops, clientv3.OpDelete(p.prefix+k))
			}
			keys = append(keys, k)
		}
		for _, k := range keys {
			delete(p.dirty, k)
		}
		p.mu.Unlock()
		if len(ops) == 0 {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, SessionTTL)
		_, err := p.cli.Txn(cctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			p.mu.Lock()
			for _, k := range keys {
				p.dirty[k] = true
			}
			p.mu.Unlock()
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				if gerr := p.grant(ctx); gerr != nil {
					return gerr
				}
				continue
			}
			return err
		}
	}
}

// SessionView is the whole cluster's session registry as one edge follows it.
type SessionView struct {
	mu    sync.RWMutex
	byKey map[string]model.Session // by full key, PREFIX stripped
	// lost holds, by edge, the records that etcd dropped with their edge's
	// lease (the edge stopped renewing it: dead, or cut off from etcd), as
	// they last were, until that edge writes a record again.
	lost    map[string]map[string]model.Session
	gen     uint64
	changed chan struct{} // poked (never blocking) after every change
}

// FollowSessions lists the registry and follows it until ctx ends,
// re-listing after a compaction or an error. It returns at once; the view
// fills as etcd answers.
func FollowSessions(ctx context.Context, cli *clientv3.Client, prefix string, log *slog.Logger) *SessionView {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &SessionView{byKey: map[string]model.Session{}, lost: map[string]map[string]model.Session{}, changed: make(chan struct{}, 1)}
	go v.follow(ctx, cli, sessionsPrefix(prefix), log)
	return v
}

func (v *SessionView) follow(ctx context.Context, cli *clientv3.Client, prefix string, log *slog.Logger) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := v.listAndWatch(ctx, cli, prefix)
		if ctx.Err() != nil {
			return
		}
		log.Warn("following the session registry; retrying", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (v *SessionView) listAndWatch(ctx context.Context, cli *clientv3.Client, prefix string) error {
	lctx, cancel := context.WithTimeout(ctx, SessionTTL)
	resp, err := cli.Get(clientv3.WithRequireLeader(lctx), prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	all := make(map[string]model.Session, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var s model.Session
		if json.Unmarshal(kv.Value, &s) == nil {
			all[strings.TrimPrefix(string(kv.Key), prefix)] = s
		}
	}
	v.mu.Lock()
	for _, s := range all { // an edge listed again is live: its lost records are history
		delete(v.lost, s.Edge)
	}
	v.byKey = all
	v.gen++
	v.mu.Unlock()
	v.poke()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1), clientv3.WithPrevKV()) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch sessions: %w", err)
		}
		expired := v.expiredLeases(ctx, cli, wr.Events)
		v.mu.Lock()
		for _, ev := range wr.Events {
			k := strings.TrimPrefix(string(ev.Kv.Key), prefix)
			if ev.Type == clientv3.EventTypeDelete {
				if old, ok := v.byKey[k]; ok && ev.PrevKv != nil && expired[clientv3.LeaseID(ev.PrevKv.Lease)] {
					if v.lost[old.Edge] == nil {
						v.lost[old.Edge] = map[string]model.Session{}
					}
					v.lost[old.Edge][k] = old
				}
				delete(v.byKey, k)
				continue
			}
			var s model.Session
			if json.Unmarshal(ev.Kv.Value, &s) == nil {
				v.byKey[k] = s
				delete(v.lost, s.Edge) // the edge writes again: it is back
			}
		}
		v.gen++
		v.mu.Unlock()
		v.poke()
	}
	return errors.New("watch sessions: the watch ended")
}

// expiredLeases returns which of the leases of the records that events
// delete are gone: those records went with their edge's lease (it expired,
// or the edge revoked it as it stopped), not withdrawn one by one.
func (v *SessionView) expiredLeases(ctx context.Context, cli *clientv3.Client, events []*clientv3.Event) map[clientv3.LeaseID]bool {
	out := map[clientv3.LeaseID]bool{}
	for _, ev := range events {
		if ev.Type != clientv3.EventTypeDelete || ev.PrevKv == nil || ev.PrevKv.Lease == 0 {
			continue
		}
		id := clientv3.LeaseID(ev.PrevKv.Lease)
		if _, done := out[id]; done {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, SessionTTL)
		ttl, err := cli.TimeToLive(cctx, id)
		cancel()
		out[id] = err == nil && ttl.TTL < 0 // -1: no such lease
	}
	return out
}

func (v *SessionView) poke() {
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

// Changed receives a value after the view changed: a burst of changes
// coalesces into one. It has one reader (the edge's data plane); read
// Sessions after receiving.
func (v *SessionView) Changed() <-chan struct{} { return v.changed }

// Sessions returns every session of the cluster, by edge, then kind, then id.
func (v *SessionView) Sessions() []model.Session {
	v.mu.RLock()
	out := slices.Collect(maps.Values(v.byKey))
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b model.Session) int {
		return strings.Compare(a.Edge+a.Kind+a.ID.String()+a.Transport, b.Edge+b.Kind+b.ID.String()+b.Transport)
	})
	return out
}

// Lost returns the records that etcd dropped with their edge's lease, as
// they last were, of every edge that has not written a record since (see
// the edge's split-brain rules, edge/trunk.go), by edge, then kind, then id.
func (v *SessionView) Lost() []model.Session {
	v.mu.RLock()
	var out []model.Session
	for _, ss := range v.lost {
		out = slices.AppendSeq(out, maps.Values(ss))
	}
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b model.Session) int {
		return strings.Compare(a.Edge+a.Kind+a.ID.String()+a.Transport, b.Edge+b.Kind+b.ID.String()+b.Transport)
	})
	return out
}

// PerEdge counts the sessions each edge holds.
func (v *SessionView) PerEdge() map[string]int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	n := map[string]int{}
	for _, s := range v.byKey {
		n[s.Edge]++
	}
	return n
}
