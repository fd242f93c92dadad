package api_test

import (
	"context"
	"errors"
	"testing"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/token"
)

// TestCredentialCheck: a tunnel token and a device credential are accepted,
// with whether a key is enrolled under each; a deleted tunnel's token, a
// revoked device's credential and an enrollment token are refused with 401;
// nothing in the store changes; the endpoint is rate limited.
func TestCredentialCheck(t *testing.T) {
	admin, reg := newPinnedServer(t)
	ctx := context.Background()
	fra, err := admin.CreateTunnel(ctx, "fra")
	must(t, err)
	conn, _, err := client.NewConnector(fra.Token)
	must(t, err)
	replicaKey := wgKey()
	_, err = conn.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: replicaKey, Hostname: "gw-fra"})
	must(t, err)
	et, err := admin.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: "laptops"})
	must(t, err)
	enroller, err := client.NewEnroller(et.Token)
	must(t, err)
	deviceKey := wgKey()
	dev, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", DeviceType: "linux", PublicKey: deviceKey})
	must(t, err)

	check := func(raw, key string) (model.CredentialCheck, error) {
		t.Helper()
		c, err := client.NewAgent(raw)
		must(t, err)
		return c.CheckCredential(ctx, key)
	}
	rev, err := reg.Rev(ctx)
	must(t, err)
	for _, tt := range []struct {
		name, raw, key, kind, who string
		enrolled                  *bool
	}{
		{"tunnel, no key", fra.Token, "", "tunnel", "fra", nil},
		{"tunnel, its replica's key", fra.Token, replicaKey, "tunnel", "fra", ptr(true)},
		{"tunnel, the device's key", fra.Token, deviceKey, "tunnel", "fra", ptr(false)},
		{"device, its key", dev.Credential, deviceKey, "device", "laptop", ptr(true)},
		{"device, another key", dev.Credential, replicaKey, "device", "laptop", ptr(false)},
	} {
		got, err := check(tt.raw, tt.key)
		if err != nil || got.Kind != tt.kind || got.Name != tt.who || got.Edge.Endpoint != "192.0.2.1:51820" ||
			(got.KeyEnrolled == nil) != (tt.enrolled == nil) || (tt.enrolled != nil && *got.KeyEnrolled != *tt.enrolled) {
			t.Errorf("%s: %+v, %v; want %s %q, key enrolled %v, the edge's endpoint", tt.name, got, err, tt.kind, tt.who, deref(tt.enrolled))
		}
	}
	if after, err := reg.Rev(ctx); err != nil || after != rev {
		t.Errorf("the store moved from revision %d to %d (%v): a check must change nothing", rev, after, err)
	}
	if _, err := check(fra.Token, "not-a-key"); !isKind(err, model.KindInvalid) {
		t.Errorf("a malformed key: %v, want invalid", err)
	}

	_, err = admin.RevokeDevice(ctx, "laptop")
	must(t, err)
	_, err = admin.DeleteTunnel(ctx, "fra", true)
	must(t, err)
	// An enrollment token is a secret of another kind: sent as a device
	// credential, it must not pass.
	tok, err := token.DecodeSecret(et.Token, token.KindEnroll)
	must(t, err)
	tok.Kind = token.KindDevice
	for name, raw := range map[string]string{"deleted tunnel": fra.Token, "revoked device": dev.Credential, "enrollment token as a credential": tok.Encode()} {
		if _, err := check(raw, ""); !isKind(err, model.KindUnauthorized) {
			t.Errorf("%s: %v, want 401", name, err)
		}
	}

	// 30 a minute in bursts of 10 per client: the burst is spent above.
	var limited error
	for range 10 {
		if _, err = check(fra.Token, ""); isCode(err, model.CodeRateLimited) {
			limited = err
			break
		}
	}
	if limited == nil {
		t.Errorf("no 429 after more than a burst of checks (last: %v)", err)
	}
}

func deref(b *bool) any {
	if b == nil {
		return "absent"
	}
	return *b
}

func isKind(err error, k model.Kind) bool {
	var me *model.Error
	return errors.As(err, &me) && me.Kind == k
}

func isCode(err error, code int) bool {
	var me *model.Error
	return errors.As(err, &me) && me.Code == code
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
