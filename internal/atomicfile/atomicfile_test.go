package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var errInjected = errors.New("injected failure")

// faultyFS is the operating system with one step failing.
type faultyFS struct {
	osFS
	fail string // chmod, write, short-write, sync, close, rename, syncdir
}

type faultyFile struct {
	*os.File
	fail string
}

func (fs faultyFS) CreateTemp(dir, pattern string) (file, error) {
	if fs.fail == "create" {
		return nil, errInjected
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return faultyFile{f, fs.fail}, nil
}

func (fs faultyFS) Rename(oldpath, newpath string) error {
	if fs.fail == "rename" {
		return errInjected
	}
	return fs.osFS.Rename(oldpath, newpath)
}

func (fs faultyFS) SyncDir(dir string) error {
	if fs.fail == "syncdir" {
		return errInjected
	}
	return fs.osFS.SyncDir(dir)
}

func (f faultyFile) Chmod(mode os.FileMode) error {
	if f.fail == "chmod" {
		return errInjected
	}
	return f.File.Chmod(mode)
}

// Write writes half the data on a full disk: the old helper renamed that
// truncated file into place.
func (f faultyFile) Write(b []byte) (int, error) {
	switch f.fail {
	case "write":
		n, _ := f.File.Write(b[:len(b)/2])
		return n, errInjected
	case "short-write":
		return f.File.Write(b[:len(b)/2])
	}
	return f.File.Write(b)
}

func (f faultyFile) Sync() error {
	if f.fail == "sync" {
		return errInjected
	}
	return f.File.Sync()
}

func (f faultyFile) Close() error {
	err := f.File.Close()
	if f.fail == "close" {
		return errInjected
	}
	return err
}

func TestWriteFailureKeepsOldFile(t *testing.T) {
	tests := []struct {
		fail    string
		wantNew bool // the new content is in place (only the directory sync failed)
	}{
		{fail: "create"},
		{fail: "chmod"},
		{fail: "write"},
		{fail: "short-write"},
		{fail: "sync"},
		{fail: "close"},
		{fail: "rename"},
		{fail: "syncdir", wantNew: true},
	}
	for _, tt := range tests {
		t.Run(tt.fail, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "master.key")
			old := []byte("old secret, whole\n")
			if err := os.WriteFile(path, old, 0o600); err != nil {
				t.Fatal(err)
			}
			err := write(faultyFS{fail: tt.fail}, path, []byte("new secret, also whole\n"), 0o600)
			if err == nil {
				t.Fatal("write succeeded despite the failure")
			}
			if tt.fail != "short-write" && !errors.Is(err, errInjected) {
				t.Errorf("error %v does not wrap the failure", err)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			want := old
			if tt.wantNew {
				want = []byte("new secret, also whole\n")
			}
			if string(got) != string(want) {
				t.Errorf("after a failed %s the file holds %q, want %q", tt.fail, got, want)
			}
			assertOnly(t, dir, "master.key")
		})
	}
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name   string
		exists bool
		perm   os.FileMode
	}{
		{name: "new secret", perm: 0o600},
		{name: "new public", perm: 0o644},
		{name: "replace, mode changes", exists: true, perm: 0o640},
		{name: "empty content", exists: true, perm: 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.exists {
				if err := os.WriteFile(path, []byte("old"), 0o666); err != nil {
					t.Fatal(err)
				}
			}
			data := []byte(tt.name)
			if err := WriteFile(path, data, tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != string(data) {
				t.Fatalf("read back %q, %v; want %q", got, err, data)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.perm)
			}
			assertOnly(t, dir, "f")
		})
	}
}

// TestWriteFileConcurrent: writers of one path never share a temporary file,
// so the result is one writer's content, whole.
func TestWriteFileConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "status.json")
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			for range 20 {
				if err := WriteFile(path, fmt.Appendf(nil, "writer %d, a line long enough to matter\n", i), 0o644); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(string(got), "writer %d, a line long enough to matter\n", &n); err != nil || n < 0 || n >= writers {
		t.Errorf("content %q is no writer's whole line", got)
	}
	assertOnly(t, dir, "status.json")
}

func TestWriteFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "f")
	if err := WriteFile(path, []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// assertOnly fails unless dir holds exactly the named file: no temporary
// file is left behind.
func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only %s", names, name)
	}
}

func TestPrivateDir(t *testing.T) {
	tests := []struct {
		name    string
		mode    os.FileMode // of an existing dir; 0: missing
		wantErr bool
	}{
		{name: "missing"},
		{name: "open", mode: 0o755},
		{name: "world writable", mode: 0o777},
		{name: "group readable", mode: 0o750},
		{name: "already private", mode: 0o700},
		{name: "sticky", mode: 0o777 | os.ModeSticky, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state", "dir")
			if tt.mode != 0 {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			err := PrivateDir(dir)
			if (err != nil) != tt.wantErr {
				t.Fatalf("PrivateDir: %v, want error %v", err, tt.wantErr)
			}
			fi, serr := os.Stat(dir)
			if serr != nil {
				t.Fatal(serr)
			}
			want := os.ModeDir | 0o700
			if tt.wantErr {
				want = os.ModeDir | tt.mode // left alone
			}
			if fi.Mode() != want {
				t.Errorf("mode %v, want %v", fi.Mode(), want)
			}
		})
	}
}
