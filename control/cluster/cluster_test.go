package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/internal/etcdtest"
)

func client(t *testing.T, url string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestKeyFile(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKey([]byte(k.Encode()))
	if err != nil || got != k {
		t.Fatalf("ParseKey(Encode()) = %x, %v", got, err)
	}
	for _, bad := range []string{"", "not base64!", "AAAA", strings.Repeat("A", 60)} {
		if _, err := ParseKey([]byte(bad)); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	sealed := k.seal("ca.key", []byte("private"))
	if bytes.Contains(sealed, []byte("private")) {
		t.Fatal("sealed secret holds its plaintext")
	}
	if p, err := k.open("ca.key", sealed); err != nil || string(p) != "private" {
		t.Fatalf("open = %q, %v", p, err)
	}
	if _, err := k.open("master.key", sealed); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("open under another name: %v, want ErrWrongKey", err)
	}
	other, _ := NewKey()
	if _, err := other.open("ca.key", sealed); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("open with another key: %v, want ErrWrongKey", err)
	}
}

// TestSecretsCreatedOnce: edges racing on an empty cluster all end up with
// one value, and an edge with another cluster key is refused.
func TestSecretsCreatedOnce(t *testing.T) {
	url := etcdtest.Start(t)
	key, _ := NewKey()
	const edges = 6
	got := make([][]byte, edges)
	var creators atomic.Int32
	var wg sync.WaitGroup
	for i := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := NewSecrets(client(t, url), "/sy/", key)
			v, created, err := s.LoadOrCreate(context.Background(), "master.key", func() ([]byte, error) {
				return []byte(fmt.Sprintf("value of edge %d", i)), nil
			})
			if err != nil {
				t.Error(err)
			}
			got[i] = v
			if created {
				creators.Add(1)
			}
		}()
	}
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], got[0]) || len(got[0]) == 0 {
			t.Fatalf("edge %d got %q, edge 0 got %q: want one value", i, got[i], got[0])
		}
	}
	if n := creators.Load(); n != 1 {
		t.Fatalf("%d edges say they created the secret, want 1", n)
	}
	cli := client(t, url)
	raw, _ := cli.Get(context.Background(), "/sy/s/master.key")
	if len(raw.Kvs) != 1 || bytes.Contains(raw.Kvs[0].Value, got[0]) {
		t.Fatalf("etcd holds %q: want the sealed value only", raw.Kvs)
	}
	wrong, _ := NewKey()
	_, _, err := NewSecrets(cli, "/sy/", wrong).LoadOrCreate(context.Background(), "master.key", func() ([]byte, error) {
		t.Fatal("create called for an existing secret")
		return nil, nil
	})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong cluster key: %v, want ErrWrongKey", err)
	}
}

func TestRegistration(t *testing.T) {
	url := etcdtest.Start(t)
	ctx := context.Background()
	const ttl = time.Second
	e1, err := Register(ctx, client(t, url), "/sy/", Edge{Name: "edge-1", API: "https://192.0.2.1:7443", WireGuard: "192.0.2.1:51820", Version: "test"}, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	c2 := client(t, url)
	e2, err := Register(ctx, c2, "/sy/", Edge{Name: "edge-2", API: "https://192.0.2.2:7443"}, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	list := func() string {
		t.Helper()
		edges, err := ListEdges(ctx, client(t, url), "/sy/")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, e := range edges {
			fmt.Fprintf(&b, "%s=%v ", e.Name, e.Healthy)
		}
		return strings.TrimSpace(b.String())
	}
	if got := list(); got != "edge-1=true edge-2=true" {
		t.Fatalf("edges: %s", got)
	}
	if _, err := Register(ctx, client(t, url), "/sy/", Edge{Name: "edge-1"}, ttl, nil); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("second edge-1: %v, want ErrNameInUse", err)
	}
	// The registration outlives several TTLs while its edge runs.
	time.Sleep(3 * ttl)
	if got := list(); got != "edge-1=true edge-2=true" {
		t.Fatalf("after 3 TTLs: %s", got)
	}
	// A clean stop shows at once; a crash (the client vanishes, the lease is
	// not revoked) within the TTL or so.
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != "edge-1=true edge-2=false" {
		t.Fatalf("after edge-2 stopped: %s", got)
	}
	e1.cancel()
	<-e1.done
	deadline := time.Now().Add(4 * ttl)
	for list() != "edge-1=false edge-2=false" {
		if time.Now().After(deadline) {
			t.Fatalf("edge-1 still healthy 4 TTLs after its keepalives stopped: %s", list())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A restarted edge-1 gets its name back.
	e1b, err := Register(ctx, client(t, url), "/sy/", Edge{Name: "edge-1"}, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e1b.Close()
	if err := ForgetEdge(ctx, client(t, url), "/sy/", "edge-1"); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("forget a running edge: %v", err)
	}
	if err := ForgetEdge(ctx, client(t, url), "/sy/", "edge-2"); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != "edge-1=true" {
		t.Fatalf("after forgetting edge-2: %s", got)
	}
}
