package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/switchyard/switchyard/internal/atomicfile"
)

// stateFileContent is the JSON kept in a Manager's state file.
type stateFileContent struct {
	// Sysctls maps a sysctl path (relative to /proc/sys) to its value
	// before the Manager first changed it.
	Sysctls map[string]string `json:"sysctls"`
}

// loadState returns the sysctl originals recorded in path; a missing file
// (or an empty path) holds none.
func loadState(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host state %s: %w", path, err)
	}
	var st stateFileContent
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse host state %s: %w", path, err)
	}
	return st.Sysctls, nil
}

// saveState atomically records the originals of the sysctls m changed, or
// removes the state file when there are none.
func (m *Manager) saveState() error {
	if m.stateFile == "" {
		return nil
	}
	if len(m.sysctls) == 0 {
		if err := os.Remove(m.stateFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove host state %s: %w", m.stateFile, err)
		}
		return nil
	}
	st := stateFileContent{Sysctls: make(map[string]string, len(m.sysctls))}
	for key, s := range m.sysctls {
		st.Sysctls[key] = s.orig
	}
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("encode host state: %w", err)
	}
	if err := atomicfile.WriteFile(m.stateFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write host state %s: %w", m.stateFile, err)
	}
	return nil
}
