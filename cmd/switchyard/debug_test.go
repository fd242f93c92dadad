package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestServeDebug(t *testing.T) {
	bound, stop, err := serveDebug("", slog.New(slog.DiscardHandler))
	if err != nil || bound != "" {
		t.Fatalf("serveDebug(\"\") = %q, %v; want off", bound, err)
	}
	stop()

	bound, stop, err = serveDebug("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + bound + "/debug/pprof/")
	if err != nil {
		stop()
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stop()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET /debug/pprof/: %s\n%s", resp.Status, body)
	}
	if _, err := http.Get("http://" + bound + "/debug/pprof/"); err == nil {
		t.Error("the listener still answers after stop")
	}

	if _, _, err := serveDebug("256.0.0.1:1", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--debug-addr") {
		t.Errorf("bad address: got %v, want an error naming --debug-addr", err)
	}
}
