package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// versionForm is the line --version prints.
var versionForm = regexp.MustCompile(`^switchyard (\S+) \(commit (\S+), built with (go\S+)\)\n$`)

// TestVersionFlag: in process, --version prints one line of the form, with
// this toolchain's version.
func TestVersionFlag(t *testing.T) {
	out := generate(t, "--version")
	m := versionForm.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("--version printed %q; want %s", out, versionForm)
	}
	if m[1] != version || m[2] != commit || m[3] != runtime.Version() {
		t.Errorf("--version printed %q; want version %q, commit %q, %s", out, version, commit, runtime.Version())
	}
}

// TestVersionFromLdflags builds the binary as the Makefile does and runs it
// as a user would: what -X sets is what --version prints.
func TestVersionFromLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "switchyard")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=v1.2.3-4-gabcdef1-dirty -X main.commit=abcdef1", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("switchyard --version: %v", err)
	}
	if want := "switchyard v1.2.3-4-gabcdef1-dirty (commit abcdef1, built with " + runtime.Version() + ")\n"; string(out) != want {
		t.Errorf("switchyard --version = %q, want %q", out, want)
	}
}

// TestResolveVersion: what -ldflags leaves unset comes from the build
// information, and -ldflags wins over it.
func TestResolveVersion(t *testing.T) {
	info := func(ver string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/switchyard/switchyard", Version: ver}}
		for _, s := range settings {
			k, v, _ := strings.Cut(s, "=")
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: v})
		}
		return bi
	}
	const rev = "vcs.revision=0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name         string
		ver, commit  string
		info         *debug.BuildInfo
		wantVer, rev string
	}{
		{"ldflags", "v0.3.0", "feedbee", info("v0.0.0-2026", rev), "v0.3.0", "feedbee"},
		{"build info", "", "", info("v0.0.0-20261202002000-0123456789ab", rev), "v0.0.0-20261202002000-0123456789ab", "0123456"},
		{"dirty tree", "", "", info("(devel)", rev, "vcs.modified=true"), "dev", "0123456-dirty"},
		{"no vcs", "", "", info("(devel)"), "dev", "unknown"},
		{"no build info", "", "", nil, "dev", "unknown"},
	} {
		ver, c := resolveVersion(tc.ver, tc.commit, tc.info)
		if ver != tc.wantVer || c != tc.rev {
			t.Errorf("%s: resolveVersion = %q, %q; want %q, %q", tc.name, ver, c, tc.wantVer, tc.rev)
		}
	}
}
