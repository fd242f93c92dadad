// Package store defines the control plane's storage contract: collections of
// opaque values under string keys, serializable transactions, one monotonic
// revision per committed write (increasing, not necessarily by one), and a change feed that replays history from any
// retained revision and then follows live writes.
//
// The contract is small on purpose so that more than one backend can carry it:
// bbolt (boltstore, the embedded default) and etcd (etcdstore), whose optimistic
// transactions fit it as written (Update may run fn more than once; List reads
// are guarded by a per-collection version key); memstore carries it in memory
// for unit tests. storetest holds the conformance suite every implementation
// runs. Callers (the registry) never see which
// backend they use.
package store

import (
	"context"
	"errors"
)

// Errors returned by every implementation.
var (
	// ErrNotFound is returned by Tx.Get for a missing key.
	ErrNotFound = errors.New("store: key not found")
	// ErrCompacted is reported by Watch when the requested revision is older than
	// the retained history; read a fresh snapshot and watch from its revision.
	ErrCompacted = errors.New("store: revision compacted")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable wraps a failure of a distributed backend to answer (no
	// quorum, unreachable, timed out): nothing was written, try again later.
	ErrUnavailable = errors.New("store: unavailable")
)

// Store is a transactional key-value store with a change feed.
type Store interface {
	// View runs fn on a consistent read-only snapshot.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a serializable read-write transaction and commits it
	// durably before returning. It returns the revision of the commit, or the
	// current revision when fn wrote nothing. fn may run more than once (an
	// optimistic backend retries on conflict), so it must have no effect outside tx.
	// An error from fn aborts the transaction and is returned as is.
	Update(ctx context.Context, fn func(Tx) error) (rev int64, err error)
	// Watch sends, in revision order, every change committed after revision
	// after: first the retained history, then live changes, until ctx ends, when
	// the channel is closed. A watcher that asks for, or falls behind into,
	// compacted history receives one Change with Err set to ErrCompacted and the
	// channel is closed.
	Watch(ctx context.Context, after int64) (<-chan Change, error)
	// Close releases the store; running watches end.
	Close() error
}

// Tx is a transaction. It must not be used after the function it was passed to returns.
type Tx interface {
	// Rev is the revision of the snapshot the transaction reads.
	Rev() int64
	// Get returns the value under key in coll, or ErrNotFound.
	Get(coll, key string) ([]byte, error)
	// List calls fn for every key in coll in ascending key order; fn's error stops the walk and is returned.
	List(coll string, fn func(key string, value []byte) error) error
	// Put stores value under key in coll (read-write transactions only).
	Put(coll, key string, value []byte) error
	// Delete removes key from coll; deleting a missing key is not an error (read-write transactions only).
	Delete(coll, key string) error
}

// Change is one committed revision: every event the transaction wrote.
type Change struct {
	Rev    int64   `json:"rev"`
	Events []Event `json:"events,omitempty"`
	Err    error   `json:"-"`
}

// Event is one write: a Put of Value, or a Delete of Key.
type Event struct {
	Coll   string `json:"coll"`
	Key    string `json:"key"`
	Value  []byte `json:"value,omitempty"`
	Delete bool   `json:"delete,omitempty"`
}
