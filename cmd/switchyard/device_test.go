package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

func newWGKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// TestDeviceEnrollmentCommands drives enrollment tokens and device
// revocation through the real binary: a token's user, expiry and use count;
// device list's token column; a revoked key refused until device unrevoke.
func TestDeviceEnrollmentCommands(t *testing.T) {
	dir := t.TempDir()
	startEdge(t, dir)
	ctx := context.Background()

	created := time.Now()
	tok := jsonCLI[model.EnrollToken](t, dir, "device enroll-token create", "--user", "alice@example.com", "--uses", "2", "--comment", "laptops")
	if tok.User != "alice@example.com" || tok.MaxUses != 2 || tok.ExpiresAt == nil ||
		tok.ExpiresAt.Before(created.Add(23*time.Hour)) || tok.ExpiresAt.After(created.Add(25*time.Hour)) {
		t.Fatalf("created token %+v; want alice's, 2 uses, expiring in 24h", tok)
	}
	if forever := jsonCLI[model.EnrollToken](t, dir, "device enroll-token create", "--expires", "0"); forever.ExpiresAt != nil || forever.User != "" {
		t.Fatalf("--expires 0 made %+v; want no expiry, no user", forever)
	}
	if _, errOut, err := run(t, dir, "device", "enroll-token", "create", "--user", "not an email"); err == nil || !strings.Contains(errOut, "not an email address") {
		t.Fatalf("--user with a bad address: %v\n%s", err, errOut)
	}

	enroller, err := client.NewEnroller(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	key := newWGKey()
	laptop, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: key, User: ""})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "pwned", PublicKey: key}); !strings.Contains(errString(err), "already enrolled") {
		t.Fatalf("a takeover re-enrollment: %v", err)
	}
	out := mustCLI(t, dir, "device", "list")
	if !strings.Contains(out, "ENROLL TOKEN") || !strings.Contains(out, tok.ID.String()) || !strings.Contains(out, "alice@example.com") {
		t.Fatalf("device list does not show the user and enrollment token:\n%s", out)
	}

	mustCLI(t, dir, "device", "revoke", "laptop")
	if _, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: key, Credential: laptop.Credential}); !strings.Contains(errString(err), "device unrevoke") {
		t.Fatalf("re-enrolling a revoked key: %v", err)
	}
	if out := mustCLI(t, dir, "device", "unrevoke", "laptop"); !strings.Contains(out, "may enroll again") {
		t.Fatalf("device unrevoke said %q", out)
	}
	if out := mustCLI(t, dir, "device", "list", "--show-revoked"); !strings.Contains(out, "(lifted)") {
		t.Fatalf("device list --show-revoked does not show the lifted revocation:\n%s", out)
	}
	if _, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: key}); err != nil {
		t.Fatalf("enrolling after unrevoke: %v", err)
	}
	// Two devices used the token's two uses.
	if _, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "third", PublicKey: newWGKey()}); !strings.Contains(errString(err), "used up") {
		t.Fatalf("a third device on a two-use token: %v", err)
	}
	if out := mustCLI(t, dir, "device", "enroll-token", "list"); !strings.Contains(out, "2/2") {
		t.Fatalf("enroll-token list does not show the uses:\n%s", out)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
