package registry

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

func TestEnrollmentRuleValidation(t *testing.T) {
	r := newRegistry(t)
	for _, tc := range []struct {
		req  model.NewEnrollmentRule
		want string
	}{
		{model.NewEnrollmentRule{Name: "nobody"}, "admits nobody"},
		{model.NewEnrollmentRule{Name: "bad", EmailDomains: []string{"exa mple.com"}}, "domain"},
		{model.NewEnrollmentRule{Name: "ip", EmailDomains: []string{"192.0.2.1"}}, "IP address"},
		{model.NewEnrollmentRule{Name: "empty", Groups: []string{" "}}, "group is empty"},
		{model.NewEnrollmentRule{Name: "short", Groups: []string{"eng"}, SessionDuration: time.Second}, "outside 1m to 90d"},
		{model.NewEnrollmentRule{Name: "long", Groups: []string{"eng"}, SessionDuration: 91 * 24 * time.Hour}, "outside 1m to 90d"},
		{model.NewEnrollmentRule{Name: "bad name!", Groups: []string{"eng"}}, "name"},
	} {
		_, err := r.AddEnrollmentRule(ctx, tc.req)
		if !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddEnrollmentRule(%+v) = %v, want invalid mentioning %q", tc.req, err, tc.want)
		}
	}
	rule := must(r.AddEnrollmentRule(ctx, model.NewEnrollmentRule{Name: "corp", EmailDomains: []string{"@Example.COM"}}))(t)
	if rule.EmailDomains[0] != "example.com" || rule.SessionDuration != model.DefaultSessionDuration || rule.Precedence != 1 {
		t.Fatalf("rule = %+v", rule)
	}
	if _, err := r.AddEnrollmentRule(ctx, model.NewEnrollmentRule{Name: "corp", Groups: []string{"x"}}); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("a second rule named corp: %v", err)
	}
	if list := must(r.ListEnrollmentRules(ctx))(t); len(list) != 1 {
		t.Fatalf("rules = %+v", list)
	}
	must(r.RemoveEnrollmentRule(ctx, "corp"))(t)
	if _, err := r.RemoveEnrollmentRule(ctx, "corp"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("removing it again: %v", err)
	}
}

func TestEnrollUserDevice(t *testing.T) {
	r := newRegistry(t)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.now = clock.Now
	zero := 0
	must(r.AddEnrollmentRule(ctx, model.NewEnrollmentRule{Name: "corp", EmailDomains: []string{"example.com"}, SessionDuration: 8 * time.Hour}))(t)
	must(r.AddEnrollmentRule(ctx, model.NewEnrollmentRule{Name: "admins", Groups: []string{"admins"}, SessionDuration: time.Hour, Precedence: &zero}))(t)
	alice := model.UserIdentity{Issuer: "https://op.example", Subject: "a1", Email: "alice@example.com", EmailVerified: true, Groups: []string{"eng"}}
	bob := model.UserIdentity{Issuer: "https://op.example", Subject: "b1", Email: "bob@other.example", Groups: []string{"admins"}}
	mallory := model.UserIdentity{Issuer: "https://op.example", Subject: "m1", Email: "mallory@other.example", Groups: []string{"eng"}}

	key := newKey()
	proof := make([]byte, model.KeyProofLen)
	d, secret := must3(r.EnrollUserDevice(ctx, alice, model.DeviceEnrollment{Name: "laptop", PublicKey: key, KeyProof: proof}, Credential{}))(t)
	start := clock.Now()
	if d.User != alice.Email || d.Subject != "a1" || len(d.Groups) != 1 || d.SessionExpiresAt == nil || !d.SessionExpiresAt.Equal(start.Add(8*time.Hour)) {
		t.Fatalf("alice's device = %+v, want her identity and a session of 8h (rule corp)", d)
	}
	db, _ := must3(r.EnrollUserDevice(ctx, bob, model.DeviceEnrollment{Name: "bobs", PublicKey: newKey()}, Credential{}))(t)
	if !db.SessionExpiresAt.Equal(start.Add(time.Hour)) {
		t.Fatalf("bob's session ends at %v, want an hour (rule admins, by group)", db.SessionExpiresAt)
	}
	_, _, err := r.EnrollUserDevice(ctx, mallory, model.DeviceEnrollment{Name: "evil", PublicKey: newKey()}, Credential{})
	if !errors.Is(err, model.ErrForbidden) || !strings.Contains(err.Error(), "mallory@other.example") || !strings.Contains(err.Error(), "no enrollment rule admits") {
		t.Fatalf("mallory's enrollment: %v, want forbidden naming her", err)
	}
	if list := must(r.ListDevices(ctx, true))(t); len(list) != 2 {
		t.Fatalf("devices after a refused enrollment = %+v, want alice's and bob's only", list)
	}
	if _, _, err := r.EnrollUserDevice(ctx, alice, model.DeviceEnrollment{Name: "laptop", PublicKey: key, User: "carol@example.com"}, Credential{}); !errors.Is(err, model.ErrForbidden) {
		t.Fatalf("expecting another user: %v", err)
	}

	clock.advance(8*time.Hour - time.Second)
	must(r.AuthenticateDevice(ctx, d.ID, secret))(t)
	clock.advance(time.Second)
	_, err = r.AuthenticateDevice(ctx, d.ID, secret)
	var e *model.Error
	if !errors.As(err, &e) || e.Code != model.CodeSessionExpired {
		t.Fatalf("authenticating at the session's end: %v, want code %d", err, model.CodeSessionExpired)
	}
	if _, err := r.DeviceConfig(ctx, d.ID); !errors.As(err, &e) || e.Code != model.CodeSessionExpired {
		t.Fatalf("config at the session's end: %v", err)
	}
	cfgs := must(r.Configs(ctx))(t)
	if _, err := cfgs.DeviceConfig(d.ID); !errors.As(err, &e) || e.Code != model.CodeSessionExpired {
		t.Fatalf("configs at the session's end: %v", err)
	}
	if snap := must(r.Snapshot(ctx))(t); len(snap.Devices) != 2 {
		t.Fatalf("snapshot devices = %d; expired ones stay in, the edge decides by time", len(snap.Devices))
	}

	// Signing in again with the same key (its proof) renews the session, same device.
	again, secret2 := must3(r.EnrollUserDevice(ctx, alice, model.DeviceEnrollment{Name: "laptop", PublicKey: key, KeyProof: proof}, Credential{}))(t)
	if again.ID != d.ID || again.IP != d.IP || !again.SessionExpiresAt.Equal(clock.Now().Add(8*time.Hour)) {
		t.Fatalf("re-login = %+v, want the same device with a new session", again)
	}
	cfg := must(r.DeviceConfig(ctx, d.ID))(t)
	if cfg.SessionExpiresAt == nil || !cfg.SessionExpiresAt.Equal(*again.SessionExpiresAt) {
		t.Fatalf("config session = %v", cfg.SessionExpiresAt)
	}
	if _, _, err := r.EnrollUserDevice(ctx, alice, model.DeviceEnrollment{Name: "laptop", PublicKey: key}, Credential{}); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("re-login of a key without its proof: %v", err)
	}

	users := must(r.ListUsers(ctx))(t)
	if len(users) != 2 || users[0].Email != alice.Email || users[1].Email != bob.Email || len(users[0].Devices) != 1 {
		t.Fatalf("users = %+v", users)
	}

	// Logout ends the session now.
	if _, err := r.LogoutUser(ctx, "nobody@example.com"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("logging out a user without devices: %v", err)
	}
	out := must(r.LogoutUser(ctx, "ALICE@example.com"))(t)
	if len(out) != 1 || !out[0].SessionExpiresAt.Equal(clock.Now()) {
		t.Fatalf("logout = %+v", out)
	}
	if _, err := r.AuthenticateDevice(ctx, d.ID, secret2); !errors.As(err, &e) || e.Code != model.CodeSessionExpired {
		t.Fatalf("authenticating after logout: %v", err)
	}
	for _, o := range must(r.ListDevices(ctx, false))(t) {
		if o.ID == db.ID && !o.SessionExpiresAt.Equal(*db.SessionExpiresAt) {
			t.Fatalf("alice's logout moved bob's session to %v", o.SessionExpiresAt)
		}
	}
}
