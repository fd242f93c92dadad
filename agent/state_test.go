package agent

import (
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
