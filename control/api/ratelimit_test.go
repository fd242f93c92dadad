package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRateLimit: a client beyond its budget gets 429 with Retry-After and a
// message, another client is still served, and the budget comes back with
// time; everyone's budget bounds many clients together.
func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l := newRateLimit("sign-in requests", 6, 3, 60, 6) // a client: 3 at once, then one per 10s
	l.now = func() time.Time { return now }
	served := 0
	h := l.wrap(func(w http.ResponseWriter, r *http.Request) { served++ })
	call := func(from string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/v1/agent/login", strings.NewReader(`{}`))
		r.RemoteAddr = from
		w := httptest.NewRecorder()
		h(w, r)
		return w
	}
	for i := range 3 {
		if w := call("192.0.2.1:4000"); w.Code != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := call("192.0.2.1:4001")
	var body ErrorBody
	json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "10" || body.Code != 1021 ||
		body.Message != "too many sign-in requests from 192.0.2.1: try again in 10s" {
		t.Fatalf("4th call: %d Retry-After %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if served != 3 {
		t.Fatalf("served %d, want 3", served)
	}
	// Another client has its own budget; an IPv6 host is counted by its /64.
	for _, from := range []string{"[2001:db8::1]:4000", "[2001:db8::2]:4000", "[2001:db8::3]:4000"} {
		if w := call(from); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", from, w.Code, w.Body)
		}
	}
	if w := call("[2001:db8::4]:4000"); w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "too many sign-in requests from 2001:db8::: try again in 10s") {
		t.Fatalf("the same /64: %d %s", w.Code, w.Body)
	}
	// Everyone's budget (6 at once, then one a second) is spent.
	w = call("198.51.100.7:4000")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "too many sign-in requests to this edge: try again in 1s") {
		t.Fatalf("everyone's budget: %d %s", w.Code, w.Body)
	}
	now = now.Add(time.Second)
	if w := call("198.51.100.7:4000"); w.Code != http.StatusOK {
		t.Fatalf("everyone's budget after 1s: %d %s", w.Code, w.Body)
	}
	// The first client's budget comes back one call per 10s.
	now = now.Add(8 * time.Second)
	if w := call("192.0.2.1:4000"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("after 9s: %d %s", w.Code, w.Body)
	}
	now = now.Add(time.Second)
	if w := call("192.0.2.1:4000"); w.Code != http.StatusOK {
		t.Fatalf("after 10s: %d %s", w.Code, w.Body)
	}
	if served != 8 {
		t.Fatalf("served %d, want 8", served)
	}
}

// TestRateLimitBody: a body beyond maxLoginBody is refused before the handler.
func TestRateLimitBody(t *testing.T) {
	l := newRateLimit("sign-in requests", 60, 10, 600, 10)
	h := l.wrap(func(w http.ResponseWriter, r *http.Request) { t.Error("handler called") })
	r := httptest.NewRequest("POST", "/v1/agent/login", strings.NewReader(strings.Repeat(" ", maxLoginBody+1)))
	w := httptest.NewRecorder()
	h(w, r)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "larger than 4096 bytes") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
