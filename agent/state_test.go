package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepareTightensStateDir: the state dir holds the WireGuard key and the
// credential; an existing one left open is tightened to 0700.
func TestPrepareTightensStateDir(t *testing.T) {
	for _, mode := range []os.FileMode{0o755, 0o777, 0o700} {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, _, err := prepare(dir, nil); err != nil {
			t.Fatalf("state dir %v: %v", mode, err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("state dir %v left at %v, want 0700", mode, fi.Mode().Perm())
		}
	}
}

// TestDamagedKeyRefused: an empty or truncated WireGuard key is refused with
// an error naming the file, and the file is left as it was.
func TestDamagedKeyRefused(t *testing.T) {
	for _, n := range []int{0, 24, 43} { // bytes of the valid file kept
		dir := t.TempDir()
		if _, err := loadOrCreateKey(dir); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, keyFile)
		whole, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, whole[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = loadOrCreateKey(dir)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("key truncated to %d bytes: %v, want an error naming %s", n, err, path)
		}
		if got, _ := os.ReadFile(path); string(got) != string(whole[:n]) {
			t.Errorf("key truncated to %d bytes was rewritten", n)
		}
	}
}

// TestReadKey: ReadKey creates nothing, and reads back the key the agent
// created.
func TestReadKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadKey(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no key yet: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadKey created a key: %v", err)
	}
	k, err := loadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadKey(dir)
	if err != nil || got != k.private {
		t.Fatalf("ReadKey = %x, %v; want the agent's key", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKey(dir); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a damaged key: %v, want an error that is not ErrNotExist", err)
	}
}
