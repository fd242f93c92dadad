package memstore

import (
	"context"
	"errors"
	"testing"

	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, history int64) (store.Store, func() store.Store) {
		s := New(Options{History: history})
		t.Cleanup(func() { s.Close() })
		reopen := func() store.Store {
			s = s.Reopen()
			return s
		}
		return s, reopen
	})
}

// TestValuesAreCopies checks that a caller changing a slice it passed to Put,
// or got from Get, List or Watch, changes nothing in the store.
func TestValuesAreCopies(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	defer s.Close()
	v := []byte("one")
	if _, err := s.Update(ctx, func(tx store.Tx) error { return tx.Put("things", "a", v) }); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	read := func() string {
		var got []byte
		err := s.View(ctx, func(tx store.Tx) error {
			var err error
			got, err = tx.Get("things", "a")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		s := string(got)
		got[1] = 'X'
		return s
	}
	if got := read(); got != "one" {
		t.Fatalf("after changing the slice given to Put the store holds %q, want one", got)
	}
	err := s.View(ctx, func(tx store.Tx) error {
		return tx.List("things", func(_ string, v []byte) error { v[2] = 'X'; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	(<-ch).Events[0].Value[0] = 'X'
	if got := read(); got != "one" {
		t.Fatalf("after changing the slices Get, List and Watch returned the store holds %q, want one", got)
	}
}

func TestClosed(t *testing.T) {
	s := New(Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.View(ctx, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Update(ctx, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Watch(ctx, 0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Watch after Close = %v, want ErrClosed", err)
	}
}
