package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/control/model"
)

// Edge is one edge of the cluster as `edge list` shows it.
type Edge = model.Edge

// DefaultTTL is the lease of an edge's registration: an edge that dies is
// shown as down this long after its last keepalive.
const DefaultTTL = 5 * time.Second

// ErrNameInUse is returned by Register when a running edge holds the name.
var ErrNameInUse = errors.New("cluster: edge name in use by a running edge")

// Registration keeps an edge's record alive until Close.
type Registration struct {
	cli    *clientv3.Client
	prefix string
	ttl    time.Duration
	log    *slog.Logger

	mu       sync.Mutex
	info     Edge
	instance string
	lease    clientv3.LeaseID

	cancel context.CancelFunc
	done   chan struct{}
}

// Register records info (Name must be set) and keeps it alive under a lease
// of ttl (0 means DefaultTTL), re-registering by itself after etcd was
// unreachable for longer than the lease. A name held by another running edge
// is refused with ErrNameInUse once that edge's lease has had time to expire
// (so that an edge restarted after a crash gets its name back).
func Register(ctx context.Context, cli *clientv3.Client, prefix string, info Edge, ttl time.Duration, log *slog.Logger) (*Registration, error) {
	if info.Name == "" || strings.ContainsAny(info.Name, "/ \t\r\n") {
		return nil, fmt.Errorf("edge name %q: must be non-empty, without '/' or spaces", info.Name)
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	inst := make([]byte, 8)
	rand.Read(inst)
	now := time.Now().UTC()
	info.Started, info.LastSeen = now, now
	r := &Registration{cli: cli, prefix: prefix, ttl: ttl, log: log, info: info, instance: hex.EncodeToString(inst), done: make(chan struct{})}
	deadline := time.Now().Add(ttl + time.Second)
	for {
		err := r.claim(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNameInUse) || time.Now().After(deadline) {
			return nil, err
		}
		log.Info("edge name held by another instance; waiting for its lease to expire", "edge", info.Name)
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.keepAlive(rctx)
	return r, nil
}

func (r *Registration) aliveKey() string  { return r.prefix + "a/" + r.info.Name }
func (r *Registration) recordKey() string { return r.prefix + "e/" + r.info.Name }

// claim takes a lease and the alive key, if no other instance holds it.
func (r *Registration) claim(ctx context.Context) error {
	lease, err := r.cli.Grant(ctx, int64((r.ttl+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("register edge %s: grant lease: %w", r.info.Name, err)
	}
	r.mu.Lock()
	r.info.LastSeen = time.Now().UTC()
	rec, _ := json.Marshal(r.info)
	r.mu.Unlock()
	ak := r.aliveKey()
	txn, err := r.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(ak), "=", 0)).
		Then(clientv3.OpPut(ak, r.instance, clientv3.WithLease(lease.ID)), clientv3.OpPut(r.recordKey(), string(rec))).
		Commit()
	if err != nil {
		r.cli.Revoke(context.Background(), lease.ID)
		return fmt.Errorf("register edge %s: %w", r.info.Name, err)
	}
	if !txn.Succeeded {
		r.cli.Revoke(context.Background(), lease.ID)
		return fmt.Errorf("register edge %s: %w", r.info.Name, ErrNameInUse)
	}
	r.mu.Lock()
	r.lease = lease.ID
	r.mu.Unlock()
	return nil
}

// keepAlive renews the lease and refreshes LastSeen; when the lease is lost
// (etcd unreachable past the TTL) it claims the name again.
func (r *Registration) keepAlive(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(r.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		lease := r.lease
		r.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, r.ttl/3)
		_, err := r.cli.KeepAliveOnce(cctx, lease)
		if err == nil {
			r.mu.Lock()
			r.info.LastSeen = time.Now().UTC()
			rec, _ := json.Marshal(r.info)
			r.mu.Unlock()
			_, err = r.cli.Put(cctx, r.recordKey(), string(rec))
		} else if ctx.Err() == nil {
			// The lease may be gone (expired while etcd was away): claim anew.
			if cerr := r.claim(cctx); cerr == nil {
				r.log.Info("edge registration renewed after a lapse", "edge", r.info.Name)
				err = nil
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log.Warn("edge registration not refreshed", "edge", r.info.Name, "err", err)
		}
	}
}

// Close withdraws the registration: the edge shows as down at once.
func (r *Registration) Close() error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	return revoke(r.cli, lease)
}

// revoke ends a lease, and with it every key bound to it, waiting at most
// two seconds for etcd.
func revoke(cli *clientv3.Client, lease clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := cli.Revoke(ctx, lease)
	return err
}

// ListEdges returns every edge that ever registered in the cluster, by name,
// each marked healthy while its lease is alive.
func ListEdges(ctx context.Context, cli *clientv3.Client, prefix string) ([]Edge, error) {
	recs, err := cli.Get(ctx, prefix+"e/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list edges: %w", err)
	}
	alive, err := cli.Get(ctx, prefix+"a/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(recs.Header.Revision))
	if err != nil {
		return nil, fmt.Errorf("list edges: %w", err)
	}
	up := map[string]bool{}
	for _, kv := range alive.Kvs {
		up[strings.TrimPrefix(string(kv.Key), prefix+"a/")] = true
	}
	var out []Edge
	for _, kv := range recs.Kvs {
		var e Edge
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("list edges: record %s: %w", kv.Key, err)
		}
		e.Healthy = up[e.Name]
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ForgetEdge removes the record of an edge that is down for good, and frees
// its index (EdgeIndex).
func ForgetEdge(ctx context.Context, cli *clientv3.Client, prefix, name string) error {
	ops := []clientv3.Op{clientv3.OpDelete(prefix + "e/" + name)}
	idx, err := cli.Get(ctx, indexKey(prefix, name))
	if err != nil {
		return fmt.Errorf("forget edge %s: %w", name, err)
	}
	if len(idx.Kvs) == 1 {
		ops = append(ops, clientv3.OpDelete(indexKey(prefix, name)), clientv3.OpDelete(prefix+"n/"+string(idx.Kvs[0].Value)))
	}
	txn, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(prefix+"a/"+name), "=", 0)).
		Then(ops...).
		Commit()
	if err != nil {
		return fmt.Errorf("forget edge %s: %w", name, err)
	}
	if !txn.Succeeded {
		return fmt.Errorf("forget edge %s: %w", name, ErrNameInUse)
	}
	return nil
}
