package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestNewRefusesPlainHTTP: the admin token never leaves over http://, and
// AllowInsecureHTTP stretches that to loopback addresses only.
func TestNewRefusesPlainHTTP(t *testing.T) {
	tests := []struct {
		url   string
		opts  []Option
		allow bool
	}{
		{"https://192.0.2.1:7443", nil, true},
		{"http://192.0.2.1:7443", nil, false},
		{"http://127.0.0.1:7443", nil, false},
		{"http://192.0.2.1:7443", []Option{AllowInsecureHTTP()}, false},
		{"http://[2001:db8::1]:7443", []Option{AllowInsecureHTTP()}, false},
		{"http://example.com:7443", []Option{AllowInsecureHTTP()}, false},
		{"http://127.0.0.1:7443", []Option{AllowInsecureHTTP()}, true},
		{"http://127.3.4.5:7443", []Option{AllowInsecureHTTP()}, true},
		{"http://[::1]:7443", []Option{AllowInsecureHTTP()}, true},
		{"http://localhost:7443", []Option{AllowInsecureHTTP()}, true},
	}
	for _, tc := range tests {
		_, err := New(tc.url, "secret", nil, tc.opts...)
		if tc.allow && err != nil {
			t.Errorf("New(%s, %d options) = %v; want a client", tc.url, len(tc.opts), err)
		}
		if !tc.allow && (!errors.Is(err, ErrInsecureHTTP) || !strings.Contains(err.Error(), "https://")) {
			t.Errorf("New(%s, %d options) = %v; want ErrInsecureHTTP naming https://", tc.url, len(tc.opts), err)
		}
	}
}

// TestPlainHTTPSendsNoToken: a plain HTTP server on loopback never sees a
// request, hence never the token, unless the caller opted in.
func TestPlainHTTPSendsNoToken(t *testing.T) {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			seen.Add(1)
		}
		w.Write([]byte("[]"))
	}))
	defer srv.Close()
	if c, err := New(srv.URL, "secret", nil); err == nil {
		c.ListTunnels(context.Background(), modelTunnelFilter())
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("the token went out over %s %d time(s)", srv.URL, n)
	}
	c, err := New(srv.URL, "secret", nil, AllowInsecureHTTP())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListTunnels(context.Background(), modelTunnelFilter()); err != nil || seen.Load() != 1 {
		t.Fatalf("with AllowInsecureHTTP on loopback: %v, %d requests", err, seen.Load())
	}
}

// TestRedirectElsewhereRefused: a redirect to another scheme or host would
// carry the token; the client refuses to follow it.
func TestRedirectElsewhereRefused(t *testing.T) {
	var seen atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen.Add(1) }))
	defer other.Close()
	srv := httptest.NewTLSServer(http.RedirectHandler(other.URL+"/v1/tunnels", http.StatusTemporaryRedirect))
	defer srv.Close()
	c := newClient(mustURL(t, srv.URL), "secret", srv.Client().Transport.(*http.Transport).TLSClientConfig)
	if _, err := c.ListTunnels(context.Background(), modelTunnelFilter()); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("ListTunnels through a redirect = %v; want a refusal", err)
	}
	if seen.Load() != 0 {
		t.Fatal("the client followed the redirect to plain HTTP")
	}
}
