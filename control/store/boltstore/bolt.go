// Package boltstore implements store.Store on one bbolt file: the embedded,
// single-node default. Every commit is fsynced before Update returns, and the
// change history is kept in the same file, so a watcher that reconnects after a
// crash resumes from its last revision.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchyard/switchyard/control/store"
)

var (
	metaBucket = []byte("_meta")
	logBucket  = []byte("_log")
	revKey     = []byte("rev")
	compactKey = []byte("compacted")
)

// DefaultHistory is how many revisions of change history are kept for watchers.
const DefaultHistory = 10000

// Options tune a Store; the zero value is the production default.
type Options struct {
	// History is the number of revisions kept for Watch; 0 means DefaultHistory.
	History int64
	// LockTimeout bounds the wait for the file lock held by another process; 0 means one second.
	LockTimeout time.Duration
}

// Store is a bbolt-backed store.Store.
type Store struct {
	db      *bolt.DB
	history int64

	mu     sync.Mutex
	notify chan struct{} // closed and replaced at every commit
	closed chan struct{}
	wg     sync.WaitGroup // running watchers
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store file at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: the file is locked by another process", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{metaBucket, logBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %s: %w", path, err)
	}
	return &Store{db: db, history: opts.History, notify: make(chan struct{}), closed: make(chan struct{})}, nil
}

// Close waits for running watchers to stop and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return nil
	default:
	}
	close(s.closed)
	s.mu.Unlock()
	s.wg.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.db.Path(), err)
	}
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
	return s.db.View(func(btx *bolt.Tx) error {
		return fn(&tx{btx: btx, rev: readRev(btx, revKey)})
	})
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	var rev int64
	var wrote bool
	err := s.db.Update(func(btx *bolt.Tx) error {
		t := &tx{btx: btx, rev: readRev(btx, revKey), writable: true}
		if err := fn(t); err != nil {
			return err
		}
		rev = t.rev
		if len(t.events) == 0 {
			return nil
		}
		wrote = true
		rev++
		return s.appendLog(btx, rev, t.events)
	})
	if err != nil {
		return 0, err
	}
	if wrote {
		s.mu.Lock()
		close(s.notify)
		s.notify = make(chan struct{})
		s.mu.Unlock()
	}
	return rev, nil
}

// appendLog records the events of revision rev and drops history beyond the limit.
func (s *Store) appendLog(btx *bolt.Tx, rev int64, events []store.Event) error {
	buf, err := json.Marshal(events)
	if err != nil {
		return fmt.Errorf("encode change %d: %w", rev, err)
	}
	lb := btx.Bucket(logBucket)
	if err := lb.Put(revBytes(rev), buf); err != nil {
		return err
	}
	meta := btx.Bucket(metaBucket)
	if err := meta.Put(revKey, revBytes(rev)); err != nil {
		return err
	}
	floor := rev - s.history
	if floor <= readRev(btx, compactKey) {
		return nil
	}
	c := lb.Cursor()
	for k, _ := c.First(); k != nil && int64(binary.BigEndian.Uint64(k)) <= floor; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return meta.Put(compactKey, revBytes(floor))
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
		s.mu.Lock()
		notify := s.notify
		s.mu.Unlock()

		changes, err := s.readLog(after)
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

// readLog returns up to 256 changes after revision after.
func (s *Store) readLog(after int64) ([]store.Change, error) {
	var out []store.Change
	err := s.db.View(func(btx *bolt.Tx) error {
		if after < readRev(btx, compactKey) {
			return store.ErrCompacted
		}
		c := btx.Bucket(logBucket).Cursor()
		for k, v := c.Seek(revBytes(after + 1)); k != nil && len(out) < 256; k, v = c.Next() {
			ch := store.Change{Rev: int64(binary.BigEndian.Uint64(k))}
			if err := json.Unmarshal(v, &ch.Events); err != nil {
				return fmt.Errorf("decode change %d: %w", ch.Rev, err)
			}
			out = append(out, ch)
		}
		return nil
	})
	return out, err
}

type tx struct {
	btx      *bolt.Tx
	rev      int64
	writable bool
	events   []store.Event
}

func (t *tx) Rev() int64 { return t.rev }

func collBucket(coll string) []byte { return append([]byte("c/"), coll...) }

func (t *tx) Get(coll, key string) ([]byte, error) {
	b := t.btx.Bucket(collBucket(coll))
	if b == nil {
		return nil, store.ErrNotFound
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (t *tx) List(coll string, fn func(key string, value []byte) error) error {
	b := t.btx.Bucket(collBucket(coll))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), bytes.Clone(v)) })
}

func (t *tx) Put(coll, key string, value []byte) error {
	if !t.writable {
		return fmt.Errorf("put %s/%s: read-only transaction", coll, key)
	}
	if coll == "" || key == "" {
		return fmt.Errorf("put %q/%q: collection and key must not be empty", coll, key)
	}
	b, err := t.btx.CreateBucketIfNotExists(collBucket(coll))
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", coll, key, err)
	}
	value = bytes.Clone(value)
	if value == nil {
		value = []byte{}
	}
	if err := b.Put([]byte(key), value); err != nil {
		return fmt.Errorf("put %s/%s: %w", coll, key, err)
	}
	t.events = append(t.events, store.Event{Coll: coll, Key: key, Value: value})
	return nil
}

func (t *tx) Delete(coll, key string) error {
	if !t.writable {
		return fmt.Errorf("delete %s/%s: read-only transaction", coll, key)
	}
	b := t.btx.Bucket(collBucket(coll))
	if b == nil || b.Get([]byte(key)) == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", coll, key, err)
	}
	t.events = append(t.events, store.Event{Coll: coll, Key: key, Delete: true})
	return nil
}

func readRev(btx *bolt.Tx, key []byte) int64 {
	v := btx.Bucket(metaBucket).Get(key)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func revBytes(rev int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(rev))
	return b[:]
}
