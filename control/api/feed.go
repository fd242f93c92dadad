package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store"
)

// Backoff of the configuration feed's store watch after a failure.
const (
	feedMinBackoff = 100 * time.Millisecond
	feedMaxBackoff = 5 * time.Second
)

// errFeedClosed ends the long polls that wait when the server closes.
var errFeedClosed = model.Errorf(model.KindUnavailable, "the API server is shutting down; retry")

// configFeed fans the store's changes out to a server's configuration long
// polls: one store watch for the whole server, a generation per revision it
// has seen, and the registry's Configs of the latest revision, read once
// and shared by every poll that needs it. It survives store failures: a
// watch that fails is opened again with backoff (after a compaction, at
// once, from the current revision), and the polls that waited answer with
// the error, as they did when each had its own watch.
type configFeed struct {
	reg    *registry.Registry
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	// waiting counts the long polls waiting for a change, for tests.
	waiting atomic.Int64

	mu   sync.Mutex
	gen  *generation
	snap *registry.Configs // the latest read
	load *configLoad       // the read under way, if any
}

// generation is the feed between two revisions it saw: done is closed when
// a newer revision arrives, or, with err set first, when the watch fails or
// the feed stops.
type generation struct {
	rev  int64 // the newest revision the feed had seen when it began
	done chan struct{}
	err  error
}

// configLoad is one read of the registry's Configs, shared by the polls
// that wait for it.
type configLoad struct {
	done chan struct{}
	snap *registry.Configs
	err  error
}

// newConfigFeed starts the feed over reg's store; stop ends it.
func newConfigFeed(reg *registry.Registry, log *slog.Logger) *configFeed {
	ctx, cancel := context.WithCancel(context.Background())
	f := &configFeed{reg: reg, log: log, cancel: cancel, done: make(chan struct{}),
		gen: &generation{done: make(chan struct{})}}
	go func() {
		defer close(f.done)
		f.run(ctx)
	}()
	return f
}

// stop ends the feed and waits for it; waiting polls answer 503.
func (f *configFeed) stop() {
	f.cancel()
	<-f.done
}

// current returns the generation under way.
func (f *configFeed) current() *generation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// advance starts a generation at rev if rev is newer than the feed has seen.
func (f *configFeed) advance(rev int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rev <= f.gen.rev {
		return
	}
	old := f.gen
	f.gen = &generation{rev: rev, done: make(chan struct{})}
	close(old.done)
}

// fail ends the generation under way with err; with last, the feed is
// over and its final generation stays ended.
func (f *configFeed) fail(err error, last bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.gen
	old.err = err
	if !last {
		f.gen = &generation{rev: old.rev, done: make(chan struct{})}
	}
	close(old.done)
}

// run follows the store until ctx ends or the store closes.
func (f *configFeed) run(ctx context.Context) {
	defer func() { f.fail(errFeedClosed, true) }()
	backoff := feedMinBackoff
	for {
		err := f.follow(ctx, &backoff)
		switch {
		case ctx.Err() != nil, errors.Is(err, store.ErrClosed):
			return
		case errors.Is(err, store.ErrCompacted):
			f.log.Info("configuration feed fell behind the store's history; resyncing")
			continue // the polls recompute from the revision follow reads next
		case err == nil:
			// The watch ended without a word (a closing store does that):
			// watch again, after a pause in case it keeps doing so.
		default:
			f.log.Warn("configuration feed: store watch failed; retrying", "err", err, "backoff", backoff)
			f.fail(err, false)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, feedMaxBackoff)
	}
}

// follow watches the store from its current revision, advancing the feed
// at every change, until the watch fails or ends; it resets backoff once a
// change arrives.
func (f *configFeed) follow(ctx context.Context, backoff *time.Duration) error {
	ctx, cancel := context.WithCancel(ctx) // ends the watch when follow returns
	defer cancel()
	rev, err := f.reg.Rev(ctx)
	if err != nil {
		return err
	}
	changes, err := f.reg.Store().Watch(ctx, rev)
	if err != nil {
		return err
	}
	// Whatever was committed before the watch began is in rev: polls that
	// computed from older revisions wake and recompute.
	f.advance(rev)
	for c := range changes {
		if c.Err != nil {
			return c.Err
		}
		f.advance(c.Rev)
		*backoff = feedMinBackoff
	}
	return ctx.Err()
}

// configs returns the registry's Configs read at minRev or later: the
// latest read when it is recent enough, else a new one, made by the first
// poll that asks and shared with those that ask meanwhile.
func (f *configFeed) configs(ctx context.Context, minRev int64) (*registry.Configs, error) {
	for {
		f.mu.Lock()
		if f.snap != nil && f.snap.Rev >= minRev {
			snap := f.snap
			f.mu.Unlock()
			return snap, nil
		}
		if l := f.load; l != nil {
			f.mu.Unlock()
			select {
			case <-l.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if l.err != nil {
				return nil, l.err
			}
			if l.snap.Rev >= minRev {
				return l.snap, nil
			}
			continue // it began before minRev was committed
		}
		l := &configLoad{done: make(chan struct{})}
		f.load = l
		f.mu.Unlock()

		// The read outlives the request that makes it: others wait for it.
		l.snap, l.err = f.reg.Configs(context.WithoutCancel(ctx))
		f.mu.Lock()
		f.load = nil
		if l.err == nil && (f.snap == nil || l.snap.Rev > f.snap.Rev) {
			f.snap = l.snap
		}
		f.mu.Unlock()
		close(l.done)
		return l.snap, l.err
	}
}
