package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/atomicfile"
)

// sessionFlag names the file `switchyard login` keeps the admin session in.
var sessionFlag = &cli.StringFlag{Name: "session", Usage: "`FILE` where switchyard login keeps the admin session (default $XDG_CONFIG_HOME/switchyard/admin-session.json)", EnvVars: []string{"SWITCHYARD_SESSION"}}

// adminSessionFile is a signed-in admin's credentials for one edge: admin
// sessions live in the memory of the edge that signed the admin in.
type adminSessionFile struct {
	API       string    `json:"api"`
	CA        string    `json:"ca,omitempty"` // PEM; empty: the system roots
	Token     string    `json:"token"`
	Email     string    `json:"email"`
	ExpiresAt time.Time `json:"expires_at"`
}

// sessionPath is the admin session file's path: --session, else the user's
// configuration directory.
func sessionPath(c *cli.Context) (string, error) {
	if p := c.String("session"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("admin session: %w; pass --session FILE", err)
	}
	return filepath.Join(dir, "switchyard", "admin-session.json"), nil
}

// loadSession reads the admin session file; a missing file is nil, nil.
func loadSession(path string) (*adminSessionFile, error) {
	buf, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read admin session: %w", err)
	}
	var s adminSessionFile
	if err := json.Unmarshal(buf, &s); err != nil {
		return nil, fmt.Errorf("parse admin session %s: %w", path, err)
	}
	if s.API == "" || s.Token == "" {
		return nil, fmt.Errorf("admin session %s names no API or no token: run switchyard login", path)
	}
	return &s, nil
}

// expired refuses a session past its end, saying so.
func (s *adminSessionFile) expired(now time.Time) error {
	if now.Before(s.ExpiresAt) {
		return nil
	}
	return model.Errorf(model.KindUnauthorized, "admin session of %s expired at %s: run switchyard login",
		s.Email, s.ExpiresAt.Local().Format(time.RFC3339))
}

// saveSession writes the admin session file whole, readable by its owner
// only; a directory it creates is the owner's only (an existing one is left
// as it is: it may be the home directory).
func saveSession(path string, s adminSessionFile) error {
	buf, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode admin session: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save admin session: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(buf, '\n'), 0o600); err != nil {
		return fmt.Errorf("save admin session: %w", err)
	}
	return nil
}
