package edge_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/edge"
)

// TestOIDCIssuerUnreachable: an edge whose identity provider cannot be
// discovered does not start, and says why.
func TestOIDCIssuerUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := edge.Run(ctx, edge.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", WGListen: "127.0.0.1:0", MASQUEListen: "",
		Log:  slog.New(slog.DiscardHandler),
		OIDC: &edge.OIDCConfig{Issuer: "http://127.0.0.1:1", ClientID: "sy", ClientSecret: "x"}})
	if err == nil || !strings.Contains(err.Error(), "sign-in with --oidc-issuer: oidc: discover issuer http://127.0.0.1:1") {
		t.Fatalf("run: %v", err)
	}
}
