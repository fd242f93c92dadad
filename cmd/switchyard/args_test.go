package main

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// leafCommands returns the word path of every command that has an action of
// its own (no subcommands), with the command.
func leafCommands(prefix []string, cmds []*cli.Command) map[string]*cli.Command {
	out := map[string]*cli.Command{}
	for _, c := range cmds {
		path := append(append([]string{}, prefix...), c.Name)
		if len(c.Subcommands) > 0 {
			for k, v := range leafCommands(path, c.Subcommands) {
				out[k] = v
			}
			continue
		}
		out[strings.Join(path, " ")] = c
	}
	return out
}

// safeFlags returns "--name value" for each required flag of c, so that
// urfave/cli reaches the action, and points directories and listeners at
// places of the test's own: were a command to run anyway, it must not touch
// /var/lib or listen beyond loopback.
func safeFlags(t *testing.T, c *cli.Command) []string {
	var out []string
	for _, f := range c.Flags {
		name := f.Names()[0]
		switch {
		case strings.HasSuffix(name, "-dir"):
			out = append(out, "--"+name, t.TempDir())
		case name == "masque-listen":
			out = append(out, "--"+name, "")
		case strings.HasSuffix(name, "-listen"):
			out = append(out, "--"+name, "127.0.0.1:0")
		case name == "tun-name":
			out = append(out, "--"+name, "sytest0")
		default:
			if r, ok := f.(cli.RequiredFlag); ok && r.IsRequired() {
				out = append(out, "--"+name, "x")
			}
		}
	}
	return out
}

// runApp runs the CLI in process with a short deadline, against an API that
// no test reaches (192.0.2.1, RFC 5737).
func runApp(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	full := append([]string{"switchyard", "--api", "https://192.0.2.1:7443", "--token", "t", "--config", filepath.Join(t.TempDir(), "none.json")}, args...)
	return newApp(io.Discard, io.Discard).RunContext(ctx, full)
}

// TestEveryCommandChecksItsArguments walks the whole command tree: each
// command refuses one positional argument more than its usage names (none,
// for most), and one fewer than it needs, before it does anything.
func TestEveryCommandChecksItsArguments(t *testing.T) {
	leaves := leafCommands(nil, newApp(io.Discard, io.Discard).Commands)
	if len(leaves) < 30 {
		t.Fatalf("found %d commands; the walk is broken", len(leaves))
	}
	for path, cmd := range leaves {
		t.Run(path, func(t *testing.T) {
			min, max := argCounts(cmd.ArgsUsage)
			words := append(strings.Fields(path), safeFlags(t, cmd)...)
			if max != math.MaxInt {
				extra := make([]string, max+1)
				for i := range extra {
					extra[i] = "bogus"
				}
				err := runApp(t, append(words, extra...)...)
				if err == nil || !strings.Contains(err.Error(), "argument") || exitCode(err) != 2 {
					t.Errorf("switchyard %s with %d arguments (usage %q): %v; want a usage error (exit 2)", path, max+1, cmd.ArgsUsage, err)
				}
			}
			if min > 0 {
				err := runApp(t, words...)
				if err == nil || !strings.Contains(err.Error(), "argument") || exitCode(err) != 2 {
					t.Errorf("switchyard %s with no arguments (usage %q): %v; want a usage error (exit 2)", path, cmd.ArgsUsage, err)
				}
			}
		})
	}
}

// TestStrayArgumentStopsTheEdge: `switchyard edge bogus --data-dir X` once
// ignored both and ran an edge on /var/lib/switchyard.
func TestStrayArgumentStopsTheEdge(t *testing.T) {
	// The flags before the stray word keep the old behaviour (which ignored
	// the ones after it) off /var/lib/switchyard and off every address.
	dir, ignored := t.TempDir(), t.TempDir()
	err := runApp(t, "edge", "--data-dir", dir, "--api-listen", "127.0.0.1:0", "--wg-listen", "127.0.0.1:0", "--masque-listen", "",
		"bogus", "--data-dir", ignored)
	if err == nil || !strings.Contains(err.Error(), "takes no arguments") {
		t.Fatalf("edge bogus: %v; want a usage error", err)
	}
	for _, d := range []string{dir, ignored} {
		if entries, _ := os.ReadDir(d); len(entries) != 0 {
			t.Fatalf("the edge started anyway: %s holds %d files", d, len(entries))
		}
	}
	for _, args := range [][]string{{"bogus"}, {"tunnel", "bogus"}, {"tunnel", "route", "nope", "x"}} {
		if err := runApp(t, args...); err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("switchyard %s: %v; want unknown command", strings.Join(args, " "), err)
		}
	}
}

func TestArgCounts(t *testing.T) {
	tests := []struct {
		usage    string
		min, max int
	}{
		{"", 0, 0},
		{"NAME", 1, 1},
		{"NAME [COMMENT]", 1, 2},
		{"CIDR TUNNEL [COMMENT]", 2, 3},
		{"[allow|block]", 0, 1},
		{"NAME|ID...", 1, math.MaxInt},
		{"[NAME...]", 0, math.MaxInt},
	}
	for _, tc := range tests {
		if min, max := argCounts(tc.usage); min != tc.min || max != tc.max {
			t.Errorf("argCounts(%q) = %d, %d; want %d, %d", tc.usage, min, max, tc.min, tc.max)
		}
	}
}
