package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.26.9", "1.26.10", -1},
		{"1.27.3", "1.26.9", 1},
		{"0.62.0", "0.62.0", 0},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"0.0.0-20260101-abc", "0.0.0-20250101-abc", 1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestBuild(t *testing.T) {
	in, out := t.TempDir(), filepath.Join(t.TempDir(), "db")
	osv := `{"id":"GO-2099-0001","modified":"2099-01-02T00:00:00Z","aliases":["CVE-2099-1"],
	  "affected":[{"package":{"name":"stdlib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.26.9"},{"introduced":"1.27.0"},{"fixed":"1.27.1"}]}]}]}`
	if err := os.WriteFile(filepath.Join(in, "GO-2099-0001.json"), []byte(osv), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := build(in, out); err != nil || n != 1 {
		t.Fatalf("build = %d, %v; want 1, nil", n, err)
	}
	var mods []moduleMeta
	raw, err := os.ReadFile(filepath.Join(out, "index", "modules.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &mods); err != nil {
		t.Fatal(err)
	}
	if len(mods) != 1 || mods[0].Path != "stdlib" || len(mods[0].Vulns) != 1 || mods[0].Vulns[0].Fixed != "1.27.1" {
		t.Fatalf("modules.json = %s", raw)
	}
	if _, err := os.Stat(filepath.Join(out, "ID", "GO-2099-0001.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := build(t.TempDir(), out); err == nil {
		t.Fatal("build of an empty directory succeeded")
	}
}
