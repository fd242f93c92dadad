package atomicfile

import (
	"fmt"
	"os"
)

// PrivateDir creates dir (and its parents) with mode 0700, or tightens an
// existing dir to 0700, for the secrets a daemon keeps in it. A sticky
// directory (/tmp and its kind) is shared, not the daemon's to tighten, and
// is refused.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode()&os.ModeSticky != 0 {
		return fmt.Errorf("%s is a shared directory (sticky bit): use a directory of its own", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("tighten %s to 0700: %w", dir, err)
		}
	}
	return nil
}
