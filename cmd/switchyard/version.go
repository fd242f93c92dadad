package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version and commit are set at build time by the Makefile:
// -ldflags "-X main.version=$(git describe --tags --always --dirty) -X main.commit=$(git rev-parse --short HEAD)".
// Without them they come from the build information the go command embeds.
// The edge registers version in its cluster and the agents report it at
// enrollment and in their posture, so every part names the same build.
var version, commit string

func init() {
	info, _ := debug.ReadBuildInfo()
	version, commit = resolveVersion(version, commit, info)
	cli.VersionPrinter = printVersion
}

// resolveVersion fills what -ldflags left unset: the module version when the
// binary was built by `go install ...@vX` (else "dev"), and the short
// vcs.revision (with "-dirty" when vcs.modified), else "unknown".
func resolveVersion(ver, rev string, info *debug.BuildInfo) (string, string) {
	if info != nil {
		if ver == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			ver = info.Main.Version
		}
		var vcsRev string
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRev = s.Value[:min(len(s.Value), 7)]
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev == "" && vcsRev != "" {
			rev = vcsRev
			if modified {
				rev += "-dirty"
			}
		}
	}
	if ver == "" {
		ver = "dev"
	}
	if rev == "" {
		rev = "unknown"
	}
	return ver, rev
}

// versionLine is what `switchyard --version` prints, e.g.
// "switchyard v0.3.0-12-gabcdef1 (commit abcdef1, built with go1.27.3)".
func versionLine() string {
	return fmt.Sprintf("switchyard %s (commit %s, built with %s)", version, commit, runtime.Version())
}

func printVersion(c *cli.Context) {
	fmt.Fprintln(c.App.Writer, versionLine())
}
