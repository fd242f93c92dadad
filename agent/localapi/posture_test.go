package localapi

import (
	"context"
	"errors"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// postureAgent is a testAgent that reports a posture.
type postureAgent struct {
	testAgent
	reports int
}

func (a *postureAgent) ReportPosture(ctx context.Context) (model.Posture, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reports++
	return model.Posture{OS: "linux", Firewall: true}, nil
}

// TestReportPosture: a client's agent reports when asked and answers its
// posture; an agent that is no client says so.
func TestReportPosture(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := &postureAgent{}
	srv, err := Listen(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p, err := NewClient("client", dir).ReportPosture(ctx)
	if err != nil || p.OS != "linux" || !p.Firewall || a.reports != 1 {
		t.Fatalf("ReportPosture = %+v, %v after %d reports", p, err, a.reports)
	}

	dir2 := t.TempDir()
	srv2, err := Listen(dir2, &testAgent{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if _, err := NewClient("connector", dir2).ReportPosture(ctx); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("ReportPosture of a connector: %v, want invalid", err)
	}
}
