package api_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/token"
)

// fakeLogins is the sign-in service as enrollment sees it: finished
// sign-ins by handle, each good once.
type fakeLogins struct {
	mu sync.Mutex
	m  map[string]model.UserIdentity
}

func (f *fakeLogins) Identity(_ context.Context, handle string) (model.UserIdentity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.m[handle]
	if !ok {
		return model.UserIdentity{}, model.Errorf(model.KindUnauthorized, "sign-in %q is unknown, unfinished or used", handle)
	}
	delete(f.m, handle)
	return id, nil
}

var _ api.Logins = (*fakeLogins)(nil)

// signInClient returns a client that reaches the server as a device
// without a token does: by its API address and CA pin.
func signInClient(t *testing.T, admin *client.Client) *client.Client {
	t.Helper()
	et, err := admin.CreateEnrollToken(context.Background(), model.NewEnrollToken{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.DecodeSecret(et.Token, token.KindEnroll)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewSignIn(tok.API, tok.CAPin)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnrollAsSignedInUser(t *testing.T) {
	logins := &fakeLogins{m: map[string]model.UserIdentity{
		"h-alice":   {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Groups: []string{"eng"}},
		"h-alice2":  {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Groups: []string{"eng"}},
		"h-mallory": {Subject: "m1", Email: "mallory@other.example", EmailVerified: true},
	}}
	admin, _, _ := newPinnedAPIWith(t, func(o *api.Options) { o.Logins = logins })
	ctx := context.Background()
	if _, err := admin.AddEnrollmentRule(ctx, model.NewEnrollmentRule{Name: "bad", EmailDomains: []string{"not a domain"}}); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("a rule with a bad domain: %v", err)
	}
	rule, err := admin.AddEnrollmentRule(ctx, model.NewEnrollmentRule{Name: "corp", EmailDomains: []string{"example.com"}, SessionDuration: 8 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rules, err := admin.EnrollmentRules(ctx); err != nil || len(rules) != 1 || rules[0].ID != rule.ID {
		t.Fatalf("rules = %+v, %v", rules, err)
	}
	dev := signInClient(t, admin)
	key := wgKey()
	before := time.Now()
	enrolled, err := dev.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: key, Login: "h-alice"})
	if err != nil {
		t.Fatal(err)
	}
	d := enrolled.Device
	if d.User != "alice@example.com" || d.Subject != "a1" || d.SessionExpiresAt == nil || d.SessionExpiresAt.Before(before.Add(8*time.Hour-time.Minute)) {
		t.Fatalf("enrolled device = %+v, want alice's with a session of 8h", d)
	}
	if enrolled.Config.SessionExpiresAt == nil || !enrolled.Config.SessionExpiresAt.Equal(*d.SessionExpiresAt) {
		t.Fatalf("config session = %v, want %v", enrolled.Config.SessionExpiresAt, d.SessionExpiresAt)
	}
	if _, err := dev.EnrollDevice(ctx, model.DeviceEnrollment{Name: "other", PublicKey: wgKey(), Login: "h-alice"}); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("a sign-in used twice: %v", err)
	}
	_, err = dev.EnrollDevice(ctx, model.DeviceEnrollment{Name: "evil", PublicKey: wgKey(), Login: "h-mallory"})
	if !errors.Is(err, model.ErrForbidden) || !strings.Contains(err.Error(), "mallory@other.example") {
		t.Fatalf("mallory's enrollment: %v, want forbidden naming her", err)
	}
	if _, err := dev.EnrollDevice(ctx, model.DeviceEnrollment{Name: "anon", PublicKey: wgKey()}); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("an enrollment with neither token nor sign-in: %v", err)
	}
	if list, err := admin.ListDevices(ctx, true); err != nil || len(list) != 1 {
		t.Fatalf("devices = %+v, %v; want alice's alone", list, err)
	}
	users, err := admin.Users(ctx)
	if err != nil || len(users) != 1 || users[0].Email != "alice@example.com" || len(users[0].Devices) != 1 || users[0].SessionExpiresAt == nil {
		t.Fatalf("users = %+v, %v", users, err)
	}

	agent, err := client.NewDevice(enrolled.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := agent.WatchDeviceConfig(ctx, "", 0); err != nil {
		t.Fatalf("the signed-in device's config: %v", err)
	}
	if out, err := admin.LogoutUser(ctx, "alice@example.com"); err != nil || len(out) != 1 {
		t.Fatalf("logout = %+v, %v", out, err)
	}
	_, _, _, err = agent.WatchDeviceConfig(ctx, "", 0)
	if !client.SessionExpired(err) || !strings.Contains(err.Error(), "client up --login") {
		t.Fatalf("config after logout: %v, want the session-expired error (code %d)", err, model.CodeSessionExpired)
	}
	if _, err := admin.LogoutUser(ctx, "nobody@example.com"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("logging out an unknown user: %v", err)
	}

	// Signing in again renews the session of the same device.
	again, err := dev.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: key, Login: "h-alice2", Credential: enrolled.Credential})
	if err != nil || again.Device.ID != d.ID || again.Device.SessionExpiresAt == nil || !again.Device.SessionExpiresAt.After(time.Now()) {
		t.Fatalf("signing in again: %+v, %v", again.Device, err)
	}
	if _, err := admin.RemoveEnrollmentRule(ctx, "corp"); err != nil {
		t.Fatal(err)
	}
}

func TestEnrollSignInNotConfigured(t *testing.T) {
	admin, _, _ := newPinnedAPIWith(t, nil)
	_, err := signInClient(t, admin).EnrollDevice(context.Background(), model.DeviceEnrollment{Name: "laptop", PublicKey: wgKey(), Login: "h"})
	if !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("a sign-in enrollment on an edge without sign-in: %v", err)
	}
}
