package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/store/storetest"
	"github.com/switchyard/switchyard/internal/etcdtest"
)

func TestConformance(t *testing.T) {
	url := etcdtest.Start(t)
	n := 0
	storetest.Run(t, func(t *testing.T, history int64) (store.Store, func() store.Store) {
		// Each test gets its own prefix on the one server; history is then
		// counted in etcd revisions, which the suite's own writes drive.
		n++
		opts := Options{Prefix: fmt.Sprintf("/t%d/", n), History: history}
		open := func() *Store {
			s, err := Open(clientv3.Config{Endpoints: []string{url}}, opts)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		s := open()
		t.Cleanup(func() { s.Close() })
		return s, func() store.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open()
			return s
		}
	})
}

// TestPrefixesAreSeparate: two clusters sharing one etcd never see each other's keys.
func TestPrefixesAreSeparate(t *testing.T) {
	url := etcdtest.Start(t)
	a, err := Open(clientv3.Config{Endpoints: []string{url}}, Options{Prefix: "/a/"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(clientv3.Config{Endpoints: []string{url}}, Options{Prefix: "/ab/"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Update(context.Background(), func(tx store.Tx) error { return tx.Put("things", "x", []byte("b")) }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, err := a.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	a.View(ctx, func(tx store.Tx) error { return tx.List("things", func(string, []byte) error { n++; return nil }) })
	if n != 0 {
		t.Fatalf("prefix /a/ lists %d keys written under /ab/", n)
	}
	rev, _ := a.Update(ctx, func(tx store.Tx) error { return tx.Put("things", "y", []byte("a")) })
	c := <-ch
	if c.Rev != rev || len(c.Events) != 1 || c.Events[0].Key != "y" {
		t.Fatalf("watch of /a/ got %+v, want only its own put at %d", c, rev)
	}
}

// TestUnavailable: with etcd gone, reads and writes fail within the request
// timeout with ErrUnavailable, and a watch ends with it.
func TestUnavailable(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	s, err := Open(clientv3.Config{Endpoints: c.Endpoints()}, Options{RequestTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Update(context.Background(), func(tx store.Tx) error { return tx.Put("things", "a", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	start := time.Now()
	_, err = s.Update(context.Background(), func(tx store.Tx) error { return tx.Put("things", "b", []byte("2")) })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("update with etcd stopped: %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("update took %v to fail", took)
	}
	if err := s.View(context.Background(), func(store.Tx) error { return nil }); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("view with etcd stopped: %v, want ErrUnavailable", err)
	}
	c.Restart(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := s.Update(ctx, func(tx store.Tx) error { return tx.Put("things", "b", []byte("2")) })
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no write after etcd came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
