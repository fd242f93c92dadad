// Package etcdstore implements store.Store on an etcd cluster, so that any
// number of edges share one configuration and one change feed.
//
// Layout under the prefix (default "/switchyard/"):
//
//	PREFIX c/COLL/KEY   the value of KEY in collection COLL
//	PREFIX v/COLL       the collection's version: rewritten by every
//	                    transaction that writes COLL
//
// Revisions are etcd revisions: monotonic, but not dense, since other writes
// to the same etcd (other prefixes, the cluster's registrations) move them too.
// Update is an optimistic transaction: it records the mod revision of every
// key it read (and, for List, of the collection's version key, so that a key
// inserted into a listed collection is a conflict too), then commits its
// writes in one etcd Txn guarded by those comparisons, and runs fn again on
// conflict. Watch follows etcd's watch from a revision; when etcd compacted
// past it, the watcher gets store.ErrCompacted and resyncs from a snapshot.
//
// It imports control/store and the etcd client only.
package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/control/store"
)

// DefaultPrefix is where a cluster's keys live unless told otherwise.
const DefaultPrefix = "/switchyard/"

// DefaultHistory is how many revisions of change history are kept for watchers.
const DefaultHistory = 10000

// DefaultRequestTimeout bounds one etcd request: an etcd without quorum makes
// calls fail after it instead of hanging.
const DefaultRequestTimeout = 3 * time.Second

// maxRetries bounds how often Update runs fn again after a conflict.
const maxRetries = 64

// Options tune a Store; the zero value is the production default.
type Options struct {
	// Prefix is the key prefix of this Switchyard cluster; "" means DefaultPrefix.
	Prefix string
	// History is the number of revisions kept for Watch: the store compacts
	// etcd's history behind it (etcd's compaction is cluster-wide). 0 means
	// DefaultHistory; a negative value leaves compaction to etcd's own
	// --auto-compaction settings.
	History int64
	// RequestTimeout bounds each etcd request; 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// Store is an etcd-backed store.Store.
type Store struct {
	cli     *clientv3.Client
	own     bool // Close closes cli
	prefix  string
	history int64
	timeout time.Duration

	mu        sync.Mutex
	compacted int64 // the latest revision this store compacted to
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // running watchers
}

var _ store.Store = (*Store)(nil)

// Open connects to the etcd cluster described by cfg and returns a Store
// that closes the client with Close.
func Open(cfg clientv3.Config, opts Options) (*Store, error) {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s := New(cli, opts)
	s.own = true
	return s, nil
}

// New returns a Store over an existing client; Close leaves the client open.
func New(cli *clientv3.Client, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.History == 0 {
		opts.History = DefaultHistory
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	return &Store{cli: cli, prefix: opts.Prefix, history: opts.History, timeout: opts.RequestTimeout, closed: make(chan struct{})}
}

// Client returns the etcd client, for the cluster's other uses of etcd
// (secrets, registrations, leases).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Prefix returns the cluster's key prefix.
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) dataPrefix() string            { return s.prefix + "c/" }
func (s *Store) collPrefix(coll string) string { return s.prefix + "c/" + coll + "/" }
func (s *Store) dataKey(coll, key string) string {
	return s.prefix + "c/" + coll + "/" + key
}
func (s *Store) versionKey(coll string) string { return s.prefix + "v/" + coll }

// splitKey parses an etcd key of the data range into collection and key.
func (s *Store) splitKey(k string) (coll, key string, ok bool) {
	rest, ok := strings.CutPrefix(k, s.dataPrefix())
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "/")
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Close implements store.Store: running watches end.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		s.wg.Wait()
		if s.own {
			err = s.cli.Close()
		}
	})
	return err
}

// wrap turns an etcd failure into an error that names etcd and, where etcd
// could not answer (no quorum, unreachable, timed out), wraps
// store.ErrUnavailable.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) || errors.Is(err, rpctypes.ErrLeaderChanged) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "Unavailable") {
		return fmt.Errorf("etcd %s: %w (%w)", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("etcd %s: %w", op, err)
}

// reqCtx bounds one request by the store's timeout and by ctx. RequireLeader
// makes a member cut off from its cluster fail at once instead of answering
// from a stale state.
func (s *Store) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	return clientv3.WithRequireLeader(ctx), cancel
}

// currentRev reads etcd's current revision with a linearizable request.
func (s *Store) currentRev(ctx context.Context) (int64, error) {
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.versionKey(""), clientv3.WithCountOnly())
	if err != nil {
		return 0, wrap("read revision", err)
	}
	return resp.Header.Revision, nil
}

// View implements store.Store: fn reads a linearizable snapshot at the
// revision current when View starts.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	rev, err := s.currentRev(ctx)
	if err != nil {
		return err
	}
	return fn(&tx{s: s, ctx: ctx, rev: rev})
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) (int64, error) {
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	for attempt := 0; attempt < maxRetries; attempt++ {
		rev, err := s.currentRev(ctx)
		if err != nil {
			return 0, err
		}
		t := &tx{s: s, ctx: ctx, rev: rev, write: true, reads: map[string]int64{}, pending: map[string]*op{}}
		if err := fn(t); err != nil {
			return 0, err
		}
		if t.err != nil {
			return 0, t.err
		}
		if len(t.ops) == 0 {
			return rev, nil
		}
		committed, crev, err := s.commit(ctx, t)
		if err != nil {
			return 0, err
		}
		if committed {
			s.maybeCompact(crev)
			return crev, nil
		}
	}
	return 0, fmt.Errorf("etcd update: still conflicting after %d attempts", maxRetries)
}

// commit writes t's operations if nothing t read has changed since.
func (s *Store) commit(ctx context.Context, t *tx) (ok bool, rev int64, err error) {
	keys := make([]string, 0, len(t.reads))
	for k := range t.reads {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cmps := make([]clientv3.Cmp, 0, len(keys))
	for _, k := range keys {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", t.reads[k]))
	}
	ops := make([]clientv3.Op, 0, len(t.ops)+4)
	colls := map[string]bool{}
	for _, o := range t.ops {
		if o.dead {
			continue
		}
		if o.del {
			ops = append(ops, clientv3.OpDelete(o.etcdKey))
		} else {
			ops = append(ops, clientv3.OpPut(o.etcdKey, string(o.value)))
		}
		colls[o.coll] = true
	}
	names := make([]string, 0, len(colls))
	for c := range colls {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		ops = append(ops, clientv3.OpPut(s.versionKey(c), ""))
	}
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, 0, wrap("commit", err)
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

// maybeCompact compacts etcd's history to rev-history, at most once per
// history/8 revisions.
func (s *Store) maybeCompact(rev int64) {
	if s.history < 0 {
		return
	}
	target := rev - s.history
	s.mu.Lock()
	step := max(s.history/8, 1)
	if target <= 0 || target-s.compacted < step {
		s.mu.Unlock()
		return
	}
	s.compacted = target
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	// Another edge may have compacted further already: that is fine.
	_, _ = s.cli.Compact(ctx, target)
}

// Watch implements store.Store.
func (s *Store) Watch(ctx context.Context, after int64) (<-chan store.Change, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	if after < 0 {
		return nil, fmt.Errorf("watch from revision %d: revision must not be negative", after)
	}
	ch := make(chan store.Change, 16)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.cli.Watch(wctx, s.dataPrefix(), clientv3.WithPrefix(), clientv3.WithRev(after+1))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ch)
		defer cancel()
		s.watch(ctx, wch, ch)
	}()
	return ch, nil
}

func (s *Store) watch(ctx context.Context, wch clientv3.WatchChan, ch chan<- store.Change) {
	send := func(c store.Change) bool {
		select {
		case ch <- c:
			return true
		case <-ctx.Done():
		case <-s.closed:
		}
		return false
	}
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-wch:
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		}
		if !ok {
			if ctx.Err() == nil && !s.isClosed() {
				send(store.Change{Err: fmt.Errorf("etcd watch: %w: the watch ended", store.ErrUnavailable)})
			}
			return
		}
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			send(store.Change{Rev: resp.CompactRevision, Err: store.ErrCompacted})
			return
		}
		if err := resp.Err(); err != nil {
			send(store.Change{Err: wrap("watch", err)})
			return
		}
		// One response may hold several revisions; a revision's events are
		// never split across responses (no fragmentation is asked for).
		var cur store.Change
		for _, ev := range resp.Events {
			coll, key, ok := s.splitKey(string(ev.Kv.Key))
			if !ok {
				continue
			}
			if ev.Kv.ModRevision != cur.Rev && cur.Rev != 0 {
				if !send(cur) {
					return
				}
				cur = store.Change{}
			}
			cur.Rev = ev.Kv.ModRevision
			e := store.Event{Coll: coll, Key: key}
			if ev.Type == clientv3.EventTypeDelete {
				e.Delete = true
			} else {
				e.Value = ev.Kv.Value
			}
			cur.Events = append(cur.Events, e)
		}
		if cur.Rev != 0 && !send(cur) {
			return
		}
	}
}

// op is one pending write of a transaction.
type op struct {
	coll, key string // store names
	etcdKey   string
	value     []byte
	del       bool
	dead      bool // superseded by a later write of the same key
}

// tx is a transaction: reads at rev, writes buffered until commit.
type tx struct {
	s     *Store
	ctx   context.Context
	rev   int64
	write bool
	err   error // a read failure: the transaction cannot commit

	reads   map[string]int64 // etcd key → mod revision seen (0: absent)
	ops     []*op            // in write order
	pending map[string]*op   // etcd key → its latest op
}

func (t *tx) Rev() int64 { return t.rev }

func (t *tx) fail(err error) error {
	if t.err == nil {
		t.err = err
	}
	return err
}

func (t *tx) Get(coll, key string) ([]byte, error) {
	k := t.s.dataKey(coll, key)
	if o := t.pending[k]; o != nil {
		if o.del {
			return nil, store.ErrNotFound
		}
		return append([]byte(nil), o.value...), nil
	}
	ctx, cancel := t.s.reqCtx(t.ctx)
	defer cancel()
	resp, err := t.s.cli.Get(ctx, k, clientv3.WithRev(t.rev))
	if err != nil {
		return nil, t.fail(wrap("get "+coll+"/"+key, err))
	}
	if t.write {
		var mod int64
		if len(resp.Kvs) > 0 {
			mod = resp.Kvs[0].ModRevision
		}
		if _, seen := t.reads[k]; !seen {
			t.reads[k] = mod
		}
	}
	if len(resp.Kvs) == 0 {
		return nil, store.ErrNotFound
	}
	return resp.Kvs[0].Value, nil
}

// listPage is how many keys one List request reads.
const listPage = 500

func (t *tx) List(coll string, fn func(key string, value []byte) error) error {
	if t.write {
		if err := t.guardCollection(coll); err != nil {
			return err
		}
	}
	// The committed keys at t.rev, merged in key order with this
	// transaction's own writes, which win over what they overwrite.
	var own []*op
	for _, o := range t.ops {
		if !o.dead && o.coll == coll {
			own = append(own, o)
		}
	}
	sort.Slice(own, func(i, j int) bool { return own[i].key < own[j].key })
	emitOwn := func() error {
		o := own[0]
		own = own[1:]
		if o.del {
			return nil
		}
		return fn(o.key, append([]byte(nil), o.value...))
	}
	pfx := t.s.collPrefix(coll)
	from, end := pfx, clientv3.GetPrefixRangeEnd(pfx)
	for {
		ctx, cancel := t.s.reqCtx(t.ctx)
		resp, err := t.s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithRev(t.rev), clientv3.WithLimit(listPage))
		cancel()
		if err != nil {
			return t.fail(wrap("list "+coll, err))
		}
		for _, kv := range resp.Kvs {
			key := strings.TrimPrefix(string(kv.Key), pfx)
			for len(own) > 0 && own[0].key < key {
				if err := emitOwn(); err != nil {
					return err
				}
			}
			if len(own) > 0 && own[0].key == key {
				if err := emitOwn(); err != nil {
					return err
				}
				continue
			}
			if err := fn(key, kv.Value); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	for len(own) > 0 {
		if err := emitOwn(); err != nil {
			return err
		}
	}
	return nil
}

// guardCollection records the collection's version so that any write to it
// by another transaction (an insert the listing would have seen) conflicts.
func (t *tx) guardCollection(coll string) error {
	k := t.s.versionKey(coll)
	if _, seen := t.reads[k]; seen {
		return nil
	}
	ctx, cancel := t.s.reqCtx(t.ctx)
	defer cancel()
	resp, err := t.s.cli.Get(ctx, k, clientv3.WithRev(t.rev))
	if err != nil {
		return t.fail(wrap("list "+coll, err))
	}
	var mod int64
	if len(resp.Kvs) > 0 {
		mod = resp.Kvs[0].ModRevision
	}
	t.reads[k] = mod
	return nil
}

func (t *tx) Put(coll, key string, value []byte) error {
	return t.add(coll, key, append([]byte(nil), value...), false)
}

func (t *tx) Delete(coll, key string) error { return t.add(coll, key, nil, true) }

func (t *tx) add(coll, key string, value []byte, del bool) error {
	if !t.write {
		return errors.New("etcd: write in a read-only transaction")
	}
	if coll == "" || strings.Contains(coll, "/") {
		return fmt.Errorf("etcd: collection name %q: must be non-empty without '/'", coll)
	}
	k := t.s.dataKey(coll, key)
	if prev := t.pending[k]; prev != nil {
		prev.dead = true // etcd refuses two writes of one key in a Txn
	}
	o := &op{coll: coll, key: key, etcdKey: k, value: value, del: del}
	t.ops = append(t.ops, o)
	t.pending[k] = o
	return nil
}
