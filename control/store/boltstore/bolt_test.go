package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, history int64) (store.Store, func() store.Store) {
		path := filepath.Join(t.TempDir(), "switchyard.db")
		s, err := Open(path, Options{History: history})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		reopen := func() store.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(path, Options{History: history})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return s, reopen
	})
}

func TestSecondOpenIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchyard.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path, Options{LockTimeout: 50e6}); err == nil {
		t.Fatal("a second Open of a locked file succeeded")
	}
}
