package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// edgeStub is an edge API that answers every request with status and counts them.
type edgeStub struct {
	*httptest.Server
	hits atomic.Int32
}

func newEdgeStub(t *testing.T, status int) *edgeStub {
	e := &edgeStub{}
	e.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		if status == -1 { // drop the connection after reading the request
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		w.WriteHeader(status)
		if status == http.StatusOK {
			w.Write([]byte(`{"name":"t1"}`))
		} else {
			w.Write([]byte(`{"code":1006,"message":"stub"}`))
		}
	}))
	t.Cleanup(e.Close)
	return e
}

// clusterClient is a client of the edges at urls, the first one first. Every
// httptest TLS server has the same certificate, so one TLS config trusts all.
func clusterClient(t *testing.T, tlsFrom *httptest.Server, urls ...string) *Client {
	c := newClient(mustURL(t, urls[0]), "secret", tlsFrom.Client().Transport.(*http.Transport).TLSClientConfig)
	c.SetAPIs(urls[1:])
	return c
}

// closedURL is an https URL where nothing listens.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	return "https://" + l.Addr().String()
}

// TestFailoverToAnotherEdge: a request that an edge cannot take goes to the
// next edge of the cluster, and later requests start there; one that an edge
// answered, or that may have changed something, does not.
func TestFailoverToAnotherEdge(t *testing.T) {
	ctx := context.Background()

	t.Run("unreachable", func(t *testing.T) {
		good := newEdgeStub(t, http.StatusOK)
		c := clusterClient(t, good.Server, closedURL(t), good.URL)
		for range 2 {
			if _, err := c.GetTunnel(ctx, "t1"); err != nil {
				t.Fatalf("GetTunnel with the first edge down: %v", err)
			}
		}
		if n := good.hits.Load(); n != 2 {
			t.Fatalf("the second edge saw %d requests, want 2", n)
		}
		// A POST that never reached the dead edge may go elsewhere too.
		c = clusterClient(t, good.Server, closedURL(t), good.URL)
		if _, err := c.CreateTunnel(ctx, "t1"); err != nil {
			t.Fatalf("CreateTunnel with the first edge down: %v", err)
		}
	})

	t.Run("store down", func(t *testing.T) {
		down, good := newEdgeStub(t, http.StatusServiceUnavailable), newEdgeStub(t, http.StatusOK)
		c := clusterClient(t, good.Server, down.URL, good.URL)
		if _, err := c.CreateTunnel(ctx, "t1"); err != nil {
			t.Fatalf("CreateTunnel with the first edge's store down: %v", err)
		}
		if down.hits.Load() != 1 || good.hits.Load() != 1 {
			t.Fatalf("hits %d and %d, want 1 and 1", down.hits.Load(), good.hits.Load())
		}
	})

	t.Run("every edge down", func(t *testing.T) {
		a, b := newEdgeStub(t, http.StatusServiceUnavailable), newEdgeStub(t, http.StatusServiceUnavailable)
		c := clusterClient(t, a.Server, a.URL, b.URL)
		_, err := c.GetTunnel(ctx, "t1")
		if e := model.AsError(err); e.Kind != model.KindUnavailable || a.hits.Load() != 1 || b.hits.Load() != 1 {
			t.Fatalf("GetTunnel with every store down = %v after %d and %d tries; want unavailable after one each", err, a.hits.Load(), b.hits.Load())
		}
	})

	for _, tc := range []struct {
		name   string
		status int
	}{{"refused", http.StatusConflict}, {"lost after sending", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			first, other := newEdgeStub(t, tc.status), newEdgeStub(t, http.StatusOK)
			c := clusterClient(t, other.Server, first.URL, other.URL)
			if _, err := c.CreateTunnel(ctx, "t1"); err == nil {
				t.Fatal("CreateTunnel succeeded")
			}
			if other.hits.Load() != 0 {
				t.Fatalf("a POST the first edge %s went to another edge too", tc.name)
			}
		})
	}
}

// TestSetAPIsKeepsCurrent: a new list of edges keeps the edge in use first,
// drops duplicates and skips what is not https.
func TestSetAPIsKeepsCurrent(t *testing.T) {
	c := newClient(mustURL(t, "https://192.0.2.1:7443"), "secret", nil)
	c.SetAPIs([]string{"https://192.0.2.2:7443", "https://192.0.2.1:7443", "http://192.0.2.3:7443", "https://192.0.2.4:7443"})
	var got []string
	for _, u := range c.apis.list {
		got = append(got, u.String())
	}
	if strings.Join(got, " ") != "https://192.0.2.1:7443 https://192.0.2.2:7443 https://192.0.2.4:7443" {
		t.Fatalf("APIs after SetAPIs: %q", got)
	}
}
