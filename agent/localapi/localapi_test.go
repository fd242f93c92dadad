package localapi

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

// testAgent is an Agent that keeps its state in memory.
type testAgent struct {
	mu        sync.Mutex
	preferred bool
	vnet      string
}

func (a *testAgent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Status{Role: "connector", PID: os.Getpid(), Healthy: true, Preferred: a.preferred, Priority: 100}
}

func (a *testAgent) SetPreferred(p bool) (Status, error) {
	a.mu.Lock()
	a.preferred = p
	a.mu.Unlock()
	return a.Status(), nil
}

func (a *testAgent) VNets(ctx context.Context) ([]model.VNet, error) {
	return []model.VNet{{ID: uuid.MustParse("00000000-0000-4000-8000-000000000001"), Name: "vnet-a", IsDefault: true}}, nil
}

func (a *testAgent) SelectVNet(ctx context.Context, vnet string) (model.VNet, error) {
	if vnet != "vnet-a" {
		return model.VNet{}, model.Errorf(model.KindNotFound, "virtual network %q not found", vnet)
	}
	a.mu.Lock()
	a.vnet = vnet
	a.mu.Unlock()
	return model.VNet{Name: vnet}, nil
}

// TestControlSocket: the socket is private (0600), answers the CLI's
// requests with the agent's errors intact, and is gone after Close, when the
// CLI says clearly that no agent runs.
func TestControlSocket(t *testing.T) {
	dir := t.TempDir()
	a := &testAgent{}
	srv, err := Listen(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	path := filepath.Join(dir, SocketFile)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, want a socket with 0600", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("state dir holds %d entries after Listen, want the socket only", len(entries))
	}

	ctx := context.Background()
	c := NewClient("connector", dir)
	for _, tc := range []struct {
		name string
		do   func() (Status, error)
		want bool
	}{
		{"status", func() (Status, error) { return c.Status(ctx) }, false},
		{"promote", func() (Status, error) { return c.SetPreferred(ctx, true) }, true},
		{"status after promote", func() (Status, error) { return c.Status(ctx) }, true},
		{"demote", func() (Status, error) { return c.SetPreferred(ctx, false) }, false},
	} {
		st, err := tc.do()
		if err != nil || st.Preferred != tc.want || st.Role != "connector" || st.PID != os.Getpid() {
			t.Errorf("%s = %+v, %v; want preferred %v", tc.name, st, err, tc.want)
		}
	}
	if v, err := c.VNets(ctx); err != nil || len(v) != 1 || v[0].Name != "vnet-a" {
		t.Errorf("VNets = %+v, %v", v, err)
	}
	if v, err := c.SelectVNet(ctx, "vnet-a"); err != nil || v.Name != "vnet-a" {
		t.Errorf("SelectVNet(vnet-a) = %+v, %v", v, err)
	}
	var e *model.Error
	if _, err := c.SelectVNet(ctx, "vnet-z"); !errors.As(err, &e) || e.Kind != model.KindNotFound || e.Code != model.CodeNotFound || !strings.Contains(e.Message, "vnet-z") {
		t.Errorf("SelectVNet(vnet-z) = %v, want the agent's not-found error", err)
	}

	if _, err := Listen(dir, a); err == nil || !strings.Contains(err.Error(), "another agent runs with state dir "+dir) {
		t.Errorf("a second Listen on a live socket = %v, want a refusal", err)
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket is left after Close: %v", err)
	}
	_, err = c.Status(ctx)
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "no connector running with state dir "+dir) {
		t.Fatalf("Status with no agent = %v, want no connector running with state dir %s", err, dir)
	}
}

// TestStaleControlSocketReplaced: a socket left by an agent that died (no
// one listens) is replaced at the next start.
func TestStaleControlSocketReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketFile)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // as SIGKILL leaves it
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	c := NewClient("client", dir)
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "no client running") {
		t.Fatalf("Status on a stale socket = %v, want no client running", err)
	}
	srv, err := Listen(dir, &testAgent{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer srv.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("Status after the restart: %v", err)
	}
}
