// Package testbin builds the switchyard binary for end-to-end tests, which
// run it as an operator would. Test-only.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build compiles the switchyard command into a fresh temporary directory, with
// the race detector when race is set, and returns its path and a function
// that removes it.
func Build(race bool) (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "switchyard-bin")
	if err != nil {
		return "", nil, fmt.Errorf("build switchyard: %w", err)
	}
	path = filepath.Join(dir, "switchyard")
	args := []string{"build", "-o", path}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/switchyard/switchyard/cmd/switchyard")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build switchyard: %w\n%s", err, out)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// Main is a TestMain body: it builds the binary into *path, runs the tests
// and removes the binary.
func Main(run func() int, path *string, race bool) int {
	p, cleanup, err := Build(race)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*path = p
	return run()
}
