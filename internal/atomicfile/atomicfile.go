// Package atomicfile replaces files whole: a reader, or the file system after
// a crash or a full disk, sees the old content or the new one, never a part.
//
// Allowed imports: the standard library only.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data and gives it mode perm (exactly: the
// umask does not apply). It writes a temporary file with a unique name in
// path's directory, syncs and closes it, renames it over path and syncs the
// directory, checking every step. When a step before the rename fails, the
// temporary file is removed and path keeps its old content.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return write(osFS{}, path, data, perm)
}

// file is the part of *os.File that write uses.
type file interface {
	Name() string
	Chmod(mode os.FileMode) error
	Write(b []byte) (int, error)
	Sync() error
	Close() error
}

// fileSystem is the seam between write and the operating system; tests
// inject failures through it.
type fileSystem interface {
	CreateTemp(dir, pattern string) (file, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	SyncDir(dir string) error
}

func write(fs fileSystem, path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := fs.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: create temporary file: %w", path, err)
	}
	tmp := f.Name()
	if err := fill(f, data, perm); err != nil {
		f.Close()
		fs.Remove(tmp)
		return fmt.Errorf("write %s: %s: %w", path, tmp, err)
	}
	if err := f.Close(); err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("write %s: close %s: %w", path, tmp, err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("write %s: rename %s: %w", path, tmp, err)
	}
	// The new content is in place; a failed directory sync means only that
	// the rename may not survive a crash.
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}

// fill sets the temporary file's mode, writes data to it and syncs it.
func fill(f file, data []byte, perm os.FileMode) error {
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	n, err := f.Write(data)
	if err == nil && n < len(data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// osFS is the operating system.
type osFS struct{}

func (osFS) CreateTemp(dir, pattern string) (file, error) { return os.CreateTemp(dir, pattern) }
func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }

// SyncDir makes the directory's entries, hence a rename in it, durable.
func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
