package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCLIRefusesPlainHTTP: the CLI sends the admin token over http:// only
// with --insecure-http, and then only to a loopback address.
func TestCLIRefusesPlainHTTP(t *testing.T) {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.Write([]byte("[]"))
	}))
	defer srv.Close()
	// An admin config without a CA, so that no CA file is needed.
	cfg := filepath.Join(t.TempDir(), "admin.json")
	if err := os.WriteFile(cfg, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		full := append([]string{"switchyard", "--token", "secret", "--config", cfg}, args...)
		return newApp(io.Discard, io.Discard).RunContext(ctx, full)
	}
	for _, args := range [][]string{
		{"--api", srv.URL, "tunnel", "list"},
		{"--api", "http://192.0.2.1:7443", "--insecure-http", "tunnel", "list"},
	} {
		if err := cli(args...); err == nil || !strings.Contains(err.Error(), "http://") || !strings.Contains(err.Error(), "use https://") {
			t.Errorf("switchyard %s: %v; want a refusal that says to use https://", strings.Join(args, " "), err)
		}
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("the token went out over plain HTTP %d time(s)", n)
	}
	if err := cli("--api", srv.URL, "--insecure-http", "tunnel", "list"); err != nil || seen.Load() != 1 {
		t.Fatalf("--insecure-http to loopback: %v, %d requests", err, seen.Load())
	}
}
