package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

// evil is what a device or connector could have stored before enrollment
// refused control characters: an ANSI clear-screen, and CR/LF/tab that
// make a fake row.
const evil = "13\x1b[2J\r\nfake-id\tfake-name\u202e"

// fakeAPI serves canned records holding evil text over TLS, and returns
// the flags that reach it.
func fakeAPI(t *testing.T) []string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]model.Device{{ID: uuid.New(), Name: "laptop", DeviceType: evil, OSVersion: evil, Version: evil, User: evil}})
	})
	mux.HandleFunc("GET /v1/tunnels", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]model.Tunnel{{ID: uuid.New(), Name: "fra", Connections: []model.Connection{{ID: uuid.New(), Hostname: evil, OriginIP: "192.0.2.7"}}}})
	})
	mux.HandleFunc("GET /v1/flows", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(model.FlowRecord{Event: model.FlowStart, Source: model.FlowSession{Kind: "client", DeviceName: evil, User: evil}})
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--api", srv.URL, "--token", "t", "--ca", ca}
}

// TestTablesEscapeAgentText: text an agent reported shows as visible
// escapes in tables and flow lines; it never moves the cursor, clears the
// screen or makes a row.
func TestTablesEscapeAgentText(t *testing.T) {
	api := fakeAPI(t)
	for _, tc := range []struct {
		args  []string
		lines int
	}{
		{[]string{"device", "list"}, 2},
		{[]string{"tunnel", "list"}, 3},
		{[]string{"flows", "tail"}, 1},
	} {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := newApp(&out, &out).RunContext(ctx, append(append([]string{"switchyard"}, api...), tc.args...))
		cancel()
		if err != nil {
			t.Fatalf("switchyard %s: %v", strings.Join(tc.args, " "), err)
		}
		s := out.String()
		if n := strings.Count(s, "\n"); n != tc.lines || strings.ContainsAny(s, "\x1b\r\u202e") || strings.Contains(s, "fake-id\t") {
			t.Errorf("switchyard %s printed %d lines (want %d) with raw control characters:\n%q", strings.Join(tc.args, " "), n, tc.lines, s)
		}
		if !strings.Contains(s, `\x1b[2J\r\nfake-id\tfake-name\u202e`) {
			t.Errorf("switchyard %s does not show the text as escapes:\n%q", strings.Join(tc.args, " "), s)
		}
	}
}

// TestDaemonLogQuotesAgentText: the daemons' slog text handler quotes a
// value with control characters, so a logged hostname cannot forge a line.
func TestDaemonLogQuotesAgentText(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("connector enrolled", "hostname", evil)
	log.Info(evil)
	if n := strings.Count(buf.String(), "\n"); n != 2 || strings.ContainsAny(buf.String(), "\x1b\r") {
		t.Fatalf("two log calls wrote %d lines:\n%q", n, buf.String())
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"laptop":          "laptop",
		"Debian «trixie»": "Debian «trixie»",
		"a\x1b[31mb":      `a\x1b[31mb`,
		"a\r\nb\tc":       `a\r\nb\tc`,
		"x\u202egnp":      `x\u202egnp`,
		"bad\xffutf8":     `bad\xffutf8`,
		"c1\u0085next":    `c1\u0085next`,
		"del\x7f":         `del\x7f`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFlattenStats(t *testing.T) {
	var v any
	in := `{"forwarded": 7, "drops": {"no_route": 2}, "trunks": [{"edge": "edge-2", "packets_in": 3}, {"edge": "edge-3", "packets_in": 4}], "list": [5, 6]}`
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	flatten("", v, got)
	want := map[string]any{"forwarded": 7.0, "drops.no_route": 2.0, "trunks.edge-2.packets_in": 3.0,
		"trunks.edge-3.packets_in": 4.0, "list.0": 5.0, "list.1": 6.0}
	if !maps.Equal(got, want) {
		t.Fatalf("flatten = %v, want %v", got, want)
	}
}
