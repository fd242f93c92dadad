// Package storetest is the conformance suite for store.Store implementations.
// Every backend's tests call Run with a factory.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/store"
)

// Factory opens a store for a test. Calling reopen closes that store and opens
// the same data again, as after a restart. history is the number of revisions
// the store must retain for watchers; 0 means the implementation's default.
type Factory func(t *testing.T, history int64) (s store.Store, reopen func() store.Store)

// Run runs the whole conformance suite.
func Run(t *testing.T, open Factory) {
	t.Run("CRUD", func(t *testing.T) { testCRUD(t, open) })
	t.Run("Atomicity", func(t *testing.T) { testAtomicity(t, open) })
	t.Run("Revisions", func(t *testing.T) { testRevisions(t, open) })
	t.Run("Durability", func(t *testing.T) { testDurability(t, open) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, open) })
	t.Run("ListConflicts", func(t *testing.T) { testListConflicts(t, open) })
	t.Run("ReadYourWrites", func(t *testing.T) { testReadYourWrites(t, open) })
	t.Run("WatchHistoryThenLive", func(t *testing.T) { testWatch(t, open) })
	t.Run("WatchCompacted", func(t *testing.T) { testWatchCompacted(t, open) })
	t.Run("WatchEndsWithContext", func(t *testing.T) { testWatchEnds(t, open) })
}

func put(t *testing.T, s store.Store, coll, key, val string) int64 {
	t.Helper()
	rev, err := s.Update(context.Background(), func(tx store.Tx) error { return tx.Put(coll, key, []byte(val)) })
	if err != nil {
		t.Fatalf("put %s/%s: %v", coll, key, err)
	}
	return rev
}

func get(t *testing.T, s store.Store, coll, key string) (string, error) {
	t.Helper()
	var v []byte
	err := s.View(context.Background(), func(tx store.Tx) error {
		var err error
		v, err = tx.Get(coll, key)
		return err
	})
	return string(v), err
}

func testCRUD(t *testing.T, open Factory) {
	s, _ := open(t, 0)
	if _, err := get(t, s, "things", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing key: got %v, want ErrNotFound", err)
	}
	put(t, s, "things", "b", "2")
	put(t, s, "things", "a", "1")
	put(t, s, "other", "a", "x")
	put(t, s, "things", "a", "1bis")
	if v, err := get(t, s, "things", "a"); err != nil || v != "1bis" {
		t.Fatalf("get things/a = %q, %v; want 1bis", v, err)
	}
	var keys []string
	err := s.View(context.Background(), func(tx store.Tx) error {
		return tx.List("things", func(k string, v []byte) error { keys = append(keys, k+"="+string(v)); return nil })
	})
	if err != nil || fmt.Sprint(keys) != "[a=1bis b=2]" {
		t.Fatalf("list things = %v, %v; want [a=1bis b=2] in key order", keys, err)
	}
	if _, err := s.Update(context.Background(), func(tx store.Tx) error { return tx.Delete("things", "a") }); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, s, "things", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get deleted key: got %v, want ErrNotFound", err)
	}
	if v, _ := get(t, s, "other", "a"); v != "x" {
		t.Fatalf("collections are not separate: other/a = %q", v)
	}
	err = s.View(context.Background(), func(tx store.Tx) error { return tx.Put("things", "c", []byte("3")) })
	if err == nil {
		t.Fatal("put in a read-only transaction succeeded")
	}
}

func testAtomicity(t *testing.T, open Factory) {
	s, _ := open(t, 0)
	put(t, s, "things", "kept", "1")
	boom := errors.New("boom")
	_, err := s.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Put("things", "half", []byte("x")); err != nil {
			return err
		}
		if err := tx.Delete("things", "kept"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update returned %v, want the function's error", err)
	}
	if _, err := get(t, s, "things", "half"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("aborted put is visible: %v", err)
	}
	if v, _ := get(t, s, "things", "kept"); v != "1" {
		t.Fatalf("aborted delete took effect: kept = %q", v)
	}
}

func testRevisions(t *testing.T, open Factory) {
	s, _ := open(t, 0)
	r1 := put(t, s, "things", "a", "1")
	r2 := put(t, s, "things", "b", "2")
	if r2 <= r1 {
		t.Fatalf("revisions not increasing: %d then %d", r1, r2)
	}
	r3, err := s.Update(context.Background(), func(tx store.Tx) error { _, err := tx.Get("things", "a"); return err })
	if err != nil || r3 != r2 {
		t.Fatalf("read-only update returned rev %d, %v; want current rev %d", r3, err, r2)
	}
	var seen int64
	s.View(context.Background(), func(tx store.Tx) error { seen = tx.Rev(); return nil })
	if seen != r2 {
		t.Fatalf("snapshot rev = %d, want %d", seen, r2)
	}
}

func testDurability(t *testing.T, open Factory) {
	s, reopen := open(t, 0)
	rev := put(t, s, "things", "a", "1")
	s = reopen()
	if v, err := get(t, s, "things", "a"); err != nil || v != "1" {
		t.Fatalf("after reopen things/a = %q, %v", v, err)
	}
	if r := put(t, s, "things", "b", "2"); r <= rev {
		t.Fatalf("revision went back after reopen: %d then %d", rev, r)
	}
}

func testConcurrentWriters(t *testing.T, open Factory) {
	s, _ := open(t, 0)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := s.Update(context.Background(), func(tx store.Tx) error {
					n := 0
					if v, err := tx.Get("counter", "n"); err == nil {
						n, _ = strconv.Atoi(string(v))
					} else if !errors.Is(err, store.ErrNotFound) {
						return err
					}
					return tx.Put("counter", "n", []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent update: %v", err)
	}
	if v, _ := get(t, s, "counter", "n"); v != strconv.Itoa(writers*each) {
		t.Fatalf("lost updates: counter = %s, want %d", v, writers*each)
	}
}

// testListConflicts checks serializability against phantoms: writers that
// each insert a key only if the collection holds none (as the registry's
// duplicate checks do) must end with exactly one key.
func testListConflicts(t *testing.T, open Factory) {
	s, _ := open(t, 0)
	const writers = 8
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(context.Background(), func(tx store.Tx) error {
				n := 0
				if err := tx.List("routes", func(string, []byte) error { n++; return nil }); err != nil {
					return err
				}
				if n > 0 {
					return nil
				}
				return tx.Put("routes", "w"+strconv.Itoa(w), []byte("x"))
			})
			if err != nil {
				t.Errorf("writer %d: %v", w, err)
			}
		}()
	}
	wg.Wait()
	n := 0
	s.View(context.Background(), func(tx store.Tx) error {
		return tx.List("routes", func(string, []byte) error { n++; return nil })
	})
	if n != 1 {
		t.Fatalf("%d keys after %d check-then-insert writers, want exactly 1", n, writers)
	}
}

// testReadYourWrites checks that a transaction sees its own writes in Get and List.
func testReadYourWrites(t *testing.T, open Factory) {
	s, _ := open(t, 0)
	put(t, s, "things", "a", "1")
	put(t, s, "things", "c", "3")
	_, err := s.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Put("things", "b", []byte("2")); err != nil {
			return err
		}
		if err := tx.Delete("things", "a"); err != nil {
			return err
		}
		if err := tx.Put("things", "c", []byte("3bis")); err != nil {
			return err
		}
		if v, err := tx.Get("things", "b"); err != nil || string(v) != "2" {
			return fmt.Errorf("get own put = %q, %v", v, err)
		}
		if _, err := tx.Get("things", "a"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("get own delete: %v, want ErrNotFound", err)
		}
		var keys []string
		if err := tx.List("things", func(k string, v []byte) error { keys = append(keys, k+"="+string(v)); return nil }); err != nil {
			return err
		}
		if fmt.Sprint(keys) != "[b=2 c=3bis]" {
			return fmt.Errorf("list inside the transaction = %v, want [b=2 c=3bis]", keys)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, ch <-chan store.Change) store.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed early")
		}
		return c
	case <-time.After(time.Second):
		t.Fatal("no change within a second")
	}
	panic("unreachable")
}

func testWatch(t *testing.T, open Factory) {
	s, _ := open(t, 0)
	r1 := put(t, s, "things", "a", "1")
	r2, err := s.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Put("things", "b", []byte("2")); err != nil {
			return err
		}
		return tx.Delete("things", "a")
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx, r1-1)
	if err != nil {
		t.Fatal(err)
	}
	c := recv(t, ch)
	if c.Rev != r1 || len(c.Events) != 1 || c.Events[0].Key != "a" || string(c.Events[0].Value) != "1" {
		t.Fatalf("first change = %+v, want put things/a=1 at %d", c, r1)
	}
	c = recv(t, ch)
	if c.Rev != r2 || len(c.Events) != 2 || c.Events[1].Key != "a" || !c.Events[1].Delete {
		t.Fatalf("second change = %+v, want put b and delete a at %d", c, r2)
	}
	start := time.Now()
	r3 := put(t, s, "things", "live", "3")
	c = recv(t, ch)
	if c.Rev != r3 || c.Events[0].Key != "live" {
		t.Fatalf("live change = %+v, want things/live at %d", c, r3)
	}
	t.Logf("live change delivered in %v", time.Since(start))
}

func testWatchCompacted(t *testing.T, open Factory) {
	s, _ := open(t, 4)
	var revs []int64
	for i := 0; i < 10; i++ {
		revs = append(revs, put(t, s, "things", strconv.Itoa(i), "x"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx, revs[0])
	if err != nil {
		t.Fatal(err)
	}
	c := recv(t, ch)
	if !errors.Is(c.Err, store.ErrCompacted) {
		t.Fatalf("watch from compacted rev: got %+v, want ErrCompacted", c)
	}
	if _, ok := <-ch; ok {
		t.Fatal("channel still open after ErrCompacted")
	}
	// Revisions are monotonic, not necessarily dense: the change after the
	// eighth write is the ninth write.
	ch, err = s.Watch(ctx, revs[7])
	if err != nil {
		t.Fatal(err)
	}
	if c := recv(t, ch); c.Err != nil || c.Rev != revs[8] {
		t.Fatalf("watch from retained rev %d: got %+v, want rev %d", revs[7], c, revs[8])
	}
}

func testWatchEnds(t *testing.T, open Factory) {
	s, _ := open(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("got a change from an empty store")
		}
	case <-time.After(time.Second):
		t.Fatal("watch did not end with its context")
	}
}
