// Package memstore implements store.Store in memory, for unit tests of the
// registry, the API and the daemons that need a real store but not a file:
// the same revisions, transactions and change feed as boltstore (it passes
// the storetest conformance suite), without a disk or an fsync per write.
//
// Transactions are serialized by a lock: Update runs fn once, while no other
// transaction runs; View runs fn on the committed state, concurrently with
// other Views. A Store forgets everything when the process ends; Reopen gives
// a test the "restart" that a file would survive. Tests about the file,
// durability or an edge's real startup keep using boltstore.
//
// Allowed imports: the standard library and control/store.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/switchyard/switchyard/control/store"
)

// DefaultHistory is how many revisions of change history are kept for watchers.
const DefaultHistory = 10000

// maxBatch bounds the changes a watcher copies out of the log at once.
const maxBatch = 256

// Options tune a Store; the zero value is the default.
type Options struct {
	// History is the number of revisions kept for Watch; 0 means DefaultHistory.
	History int64
}

// data is what a Store holds, shared by the Stores Reopen makes.
type data struct {
	mu      sync.RWMutex
	colls   map[string]map[string][]byte
	rev     int64
	floor   int64          // Watch from a revision below this is compacted
	log     []store.Change // revisions floor+1 .. rev, ascending
	history int64
	notify  chan struct{} // closed and replaced at every commit
}

// Store is an in-memory store.Store.
type Store struct {
	d *data

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup // running watchers
}

var _ store.Store = (*Store)(nil)

// New returns an empty Store.
func New(opts Options) *Store {
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	d := &data{colls: map[string]map[string][]byte{}, history: opts.History, notify: make(chan struct{})}
	return &Store{d: d, closed: make(chan struct{})}
}

// Reopen closes s and returns a new Store over the same data and history, as
// reopening a bbolt file after a restart would.
func (s *Store) Reopen() *Store {
	s.Close()
	return &Store{d: s.d, closed: make(chan struct{})}
}

// Close ends running watches and waits for them; later calls return store.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.wg.Wait()
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// View implements store.Store.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.isClosed() {
		return store.ErrClosed
	}
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	t := &tx{d: s.d, rev: s.d.rev}
	defer t.end()
	return fn(t)
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	t := &tx{d: d, rev: d.rev, writes: map[string]map[string][]byte{}}
	err := fn(t)
	t.end()
	if err != nil {
		return 0, err
	}
	if len(t.events) == 0 {
		return d.rev, nil
	}
	for coll, kv := range t.writes {
		c := d.colls[coll]
		if c == nil {
			c = map[string][]byte{}
			d.colls[coll] = c
		}
		for k, v := range kv {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
	}
	d.rev++
	d.log = append(d.log, store.Change{Rev: d.rev, Events: t.events})
	if floor := d.rev - d.history; floor > d.floor {
		d.log = slices.Delete(d.log, 0, int(floor-d.floor))
		d.floor = floor
	}
	close(d.notify)
	d.notify = make(chan struct{})
	return d.rev, nil
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
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ch)
		s.watch(ctx, after, ch)
	}()
	return ch, nil
}

func (s *Store) watch(ctx context.Context, after int64, ch chan<- store.Change) {
	for {
		changes, notify, err := s.d.changesAfter(after)
		if err != nil {
			select {
			case ch <- store.Change{Rev: after, Err: err}:
			case <-ctx.Done():
			case <-s.closed:
			}
			return
		}
		for _, c := range changes {
			select {
			case ch <- c:
				after = c.Rev
			case <-ctx.Done():
				return
			case <-s.closed:
				return
			}
		}
		if len(changes) > 0 {
			continue // more may have been committed while sending
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		}
	}
}

// changesAfter returns up to maxBatch changes after revision after, and the
// channel closed at the next commit; ErrCompacted when after is below the
// retained history.
func (d *data) changesAfter(after int64) ([]store.Change, <-chan struct{}, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if after < d.floor {
		return nil, nil, store.ErrCompacted
	}
	i := sort.Search(len(d.log), func(i int) bool { return d.log[i].Rev > after })
	n := min(len(d.log)-i, maxBatch)
	out := make([]store.Change, n)
	for j := range out {
		c := d.log[i+j]
		// Events are never changed after commit, but receivers may change their values.
		evs := make([]store.Event, len(c.Events))
		for k, e := range c.Events {
			e.Value = bytes.Clone(e.Value)
			evs[k] = e
		}
		out[j] = store.Change{Rev: c.Rev, Events: evs}
	}
	return out, d.notify, nil
}

// tx reads the committed data under d.mu and, in an Update, buffers its
// writes in writes (a nil value is a delete) until commit.
type tx struct {
	d      *data
	rev    int64
	writes map[string]map[string][]byte // nil in a View
	events []store.Event
	done   bool
}

func (t *tx) end() { t.done = true }

func (t *tx) check(op, coll, key string) error {
	if t.done {
		return fmt.Errorf("%s %s/%s: transaction already ended", op, coll, key)
	}
	return nil
}

func (t *tx) Rev() int64 { return t.rev }

func (t *tx) Get(coll, key string) ([]byte, error) {
	if err := t.check("get", coll, key); err != nil {
		return nil, err
	}
	if v, ok := t.writes[coll][key]; ok {
		if v == nil {
			return nil, store.ErrNotFound
		}
		return bytes.Clone(v), nil
	}
	v, ok := t.d.colls[coll][key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (t *tx) List(coll string, fn func(key string, value []byte) error) error {
	if err := t.check("list", coll, ""); err != nil {
		return err
	}
	committed, written := t.d.colls[coll], t.writes[coll]
	keys := make([]string, 0, len(committed)+len(written))
	for k := range committed {
		if _, ok := written[k]; !ok {
			keys = append(keys, k)
		}
	}
	for k, v := range written {
		if v != nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, ok := written[k]
		if !ok {
			v = committed[k]
		}
		if err := fn(k, bytes.Clone(v)); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) Put(coll, key string, value []byte) error {
	if err := t.check("put", coll, key); err != nil {
		return err
	}
	if t.writes == nil {
		return fmt.Errorf("put %s/%s: read-only transaction", coll, key)
	}
	if coll == "" || key == "" {
		return fmt.Errorf("put %q/%q: collection and key must not be empty", coll, key)
	}
	value = bytes.Clone(value)
	if value == nil {
		value = []byte{}
	}
	t.write(coll, key, value)
	t.events = append(t.events, store.Event{Coll: coll, Key: key, Value: value})
	return nil
}

func (t *tx) Delete(coll, key string) error {
	if err := t.check("delete", coll, key); err != nil {
		return err
	}
	if t.writes == nil {
		return fmt.Errorf("delete %s/%s: read-only transaction", coll, key)
	}
	if _, err := t.Get(coll, key); err != nil {
		return nil // missing: not an error, and no event
	}
	t.write(coll, key, nil)
	t.events = append(t.events, store.Event{Coll: coll, Key: key, Delete: true})
	return nil
}

func (t *tx) write(coll, key string, value []byte) {
	kv := t.writes[coll]
	if kv == nil {
		kv = map[string][]byte{}
		t.writes[coll] = kv
	}
	kv[key] = value
}
