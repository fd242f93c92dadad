package oidc_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/oidc"
	"github.com/switchyard/switchyard/internal/testop"
)

const callback = "http://127.0.0.1:9/v1/login/callback" // never dialled: the test carries the redirect

var (
	alice = testop.User{Email: "alice@example.com", Password: "pw-alice", Groups: []string{"eng", "admins"}}
	bob   = testop.User{Email: "bob@example.org", Password: "pw-bob"}
)

func setup(t *testing.T, opCfg testop.Config, rpCfg oidc.Config) (*testop.Provider, *oidc.RP) {
	t.Helper()
	opCfg.ClientID, opCfg.ClientSecret = "switchyard", "s3cret"
	opCfg.RedirectURIs = []string{callback}
	if opCfg.Users == nil {
		opCfg.Users = []testop.User{alice, bob}
	}
	op, err := testop.Start(opCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	rpCfg.Issuer, rpCfg.ClientID, rpCfg.ClientSecret, rpCfg.RedirectURL = op.Issuer(), "switchyard", "s3cret", callback
	rp, err := oidc.New(context.Background(), rpCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rp.Close() })
	return op, rp
}

// waitDone polls a sign-in until it is done or fails.
func waitDone(t *testing.T, rp *oidc.RP, handle string) (oidc.Result, error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r, err := rp.Poll(handle)
		if err != nil || r.Done {
			return r, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("sign-in still pending after 20s")
	return oidc.Result{}, nil
}

func TestDeviceSignIn(t *testing.T) {
	op, rp := setup(t, testop.Config{}, oidc.Config{})
	ctx := context.Background()
	l, err := rp.Start(ctx, oidc.FlowDevice, oidc.PurposeDevice, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.UserCode == "" || !strings.HasPrefix(l.VerificationURI, op.Issuer()) || len(l.ID) != 43 {
		t.Fatalf("login %+v", l)
	}
	if _, err := rp.Identity(ctx, l.ID); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("identity of a pending sign-in: %v, want a conflict", err)
	}
	if err := op.ApproveDevice(ctx, l.UserCode, alice); err != nil {
		t.Fatal(err)
	}
	r, err := waitDone(t, rp, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := model.UserIdentity{Issuer: op.Issuer(), Subject: "sub-alice@example.com", Email: alice.Email, EmailVerified: true, Groups: alice.Groups}
	if r.Identity.Email != want.Email || r.Identity.Subject != want.Subject || r.Identity.Issuer != want.Issuer || !slices.Equal(r.Identity.Groups, want.Groups) {
		t.Fatalf("identity %+v, want %+v", r.Identity, want)
	}
	if _, err := rp.Take(l.ID, oidc.PurposeAdmin); !errors.Is(err, model.ErrForbidden) {
		t.Fatalf("take for admin a device sign-in: %v", err)
	}
	id, err := rp.Identity(ctx, l.ID)
	if err != nil || id.Email != alice.Email {
		t.Fatalf("identity: %+v, %v", id, err)
	}
	if _, err := rp.Identity(ctx, l.ID); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("second identity: %v, want unauthorized (one use)", err)
	}
}

func TestDeviceDenied(t *testing.T) {
	op, rp := setup(t, testop.Config{}, oidc.Config{})
	ctx := context.Background()
	l, err := rp.Start(ctx, oidc.FlowDevice, oidc.PurposeDevice, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := op.DenyDevice(ctx, l.UserCode, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := waitDone(t, rp, l.ID); err == nil || !strings.Contains(err.Error(), "access_denied") {
		t.Fatalf("denied sign-in: %v", err)
	}
	if _, err := rp.Identity(ctx, l.ID); err == nil {
		t.Fatal("identity of a denied sign-in: no error")
	}
}

func browserSignIn(t *testing.T, op *testop.Provider, rp *oidc.RP, user testop.User) (oidc.Login, model.UserIdentity, error) {
	t.Helper()
	ctx := context.Background()
	l, err := rp.Start(ctx, oidc.FlowBrowser, oidc.PurposeAdmin, "/console")
	if err != nil {
		t.Fatal(err)
	}
	cb, err := op.SignIn(ctx, l.VerificationURI, user)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cb, callback+"?") {
		t.Fatalf("provider redirected to %s", cb)
	}
	u, _ := url.Parse(cb)
	redirect, id, err := rp.Callback(ctx, u.Query())
	if err == nil && redirect != "/console" {
		t.Fatalf("callback redirect %q", redirect)
	}
	return l, id, err
}

func TestBrowserSignIn(t *testing.T) {
	op, rp := setup(t, testop.Config{}, oidc.Config{})
	l, id, err := browserSignIn(t, op, rp, bob)
	if err != nil || id.Email != bob.Email || len(id.Groups) != 0 {
		t.Fatalf("callback: %+v, %v", id, err)
	}
	got, err := rp.Take(l.ID, oidc.PurposeAdmin)
	if err != nil || got.Email != bob.Email {
		t.Fatalf("take: %+v, %v", got, err)
	}
	if _, _, err := rp.Callback(context.Background(), url.Values{"state": {"forged"}, "code": {"x"}}); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("callback with an unknown state: %v", err)
	}
}

func TestBadTokensRefused(t *testing.T) {
	op, rp := setup(t, testop.Config{}, oidc.Config{})
	for _, tc := range []struct {
		name   string
		tamper *testop.Tamper
		want   string
	}{
		{"signature", testop.ForgedSignature(), "id token: signature invalid"},
		{"audience", testop.WrongAudience(), "id token: audience mismatch"},
		{"issuer", testop.WrongIssuer(), "id token: issuer mismatch"},
		{"nonce", testop.WrongNonce(), "id token: nonce mismatch"},
		{"expired", testop.Expired(), "id token: expired"},
		{"no email", testop.SetClaim("email", ""), "id token: no email claim"},
		{"unverified email", testop.SetClaim("email_verified", false), "is not verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op.SetTamper(tc.tamper)
			defer op.SetTamper(nil)
			l, _, err := browserSignIn(t, op, rp, alice)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, model.ErrUnauthorized) {
				t.Fatalf("callback: %v, want unauthorized %q", err, tc.want)
			}
			if _, err := rp.Take(l.ID, oidc.PurposeAdmin); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("take after a refused token: %v", err)
			}
		})
	}
	// The device flow verifies the same way (no nonce there).
	op.SetTamper(testop.ForgedSignature())
	ctx := context.Background()
	l, err := rp.Start(ctx, oidc.FlowDevice, oidc.PurposeDevice, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := op.ApproveDevice(ctx, l.UserCode, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := waitDone(t, rp, l.ID); err == nil || !strings.Contains(err.Error(), "id token: signature invalid") {
		t.Fatalf("device sign-in with a forged token: %v", err)
	}
	if _, err := rp.Identity(ctx, l.ID); err == nil {
		t.Fatal("identity of a forged sign-in: no error")
	}
}

func TestGroupsClaim(t *testing.T) {
	// The provider sends groups under "roles"; an edge configured for
	// "roles" sees them, one left at "groups" sees none and signs in anyway.
	for _, tc := range []struct {
		claim string
		want  []string
	}{{"roles", alice.Groups}, {"", nil}, {"no-such-claim", nil}} {
		op, rp := setup(t, testop.Config{GroupsClaim: "roles"}, oidc.Config{GroupsClaim: tc.claim})
		_, id, err := browserSignIn(t, op, rp, alice)
		if err != nil || id.Email != alice.Email || !slices.Equal(id.Groups, tc.want) {
			t.Errorf("claim %q: %+v, %v; want groups %v", tc.claim, id, err, tc.want)
		}
	}
}

func TestPendingBounded(t *testing.T) {
	_, rp := setup(t, testop.Config{}, oidc.Config{MaxPending: 3, PendingTTL: time.Second})
	ctx := context.Background()
	for i := range 3 {
		if _, err := rp.Start(ctx, oidc.FlowBrowser, oidc.PurposeDevice, ""); err != nil {
			t.Fatalf("sign-in %d: %v", i, err)
		}
	}
	if _, err := rp.Start(ctx, oidc.FlowBrowser, oidc.PurposeDevice, ""); !errors.Is(err, &model.Error{Kind: model.KindUnavailable}) {
		t.Fatalf("fourth sign-in: %v, want unavailable", err)
	}
	time.Sleep(1100 * time.Millisecond)
	l, err := rp.Start(ctx, oidc.FlowBrowser, oidc.PurposeDevice, "")
	if err != nil || rp.Pending() != 1 {
		t.Fatalf("after expiry: %v, %d pending", err, rp.Pending())
	}
	if _, err := rp.Poll(l.ID + "x"); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("poll of an unknown handle: %v", err)
	}
}

func TestDiscoveryFails(t *testing.T) {
	_, err := oidc.New(context.Background(), oidc.Config{Issuer: "http://127.0.0.1:1", ClientID: "x"})
	if err == nil || !strings.Contains(err.Error(), "discover issuer http://127.0.0.1:1") {
		t.Fatalf("new with an unreachable issuer: %v", err)
	}
}
