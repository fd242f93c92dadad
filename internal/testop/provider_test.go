package testop_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/switchyard/switchyard/internal/testop"
)

var alice = testop.User{Email: "alice@example.com", Password: "pw-alice", Groups: []string{"eng", "admins"}}

func start(t *testing.T) (*testop.Provider, *oidc.Provider, *oauth2.Config) {
	t.Helper()
	p, err := testop.Start(testop.Config{ClientID: "switchyard", ClientSecret: "s3cret",
		RedirectURIs: []string{"http://127.0.0.1:9/callback"}, Users: []testop.User{alice}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ctx := context.Background()
	rp, err := oidc.NewProvider(ctx, p.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: "switchyard", ClientSecret: "s3cret", Endpoint: rp.Endpoint(),
		RedirectURL: "http://127.0.0.1:9/callback", Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"}}
	return p, rp, cfg
}

type claims struct {
	Email  string   `json:"email"`
	Groups []string `json:"groups"`
	Nonce  string   `json:"nonce"`
}

func TestDeviceFlow(t *testing.T) {
	p, rp, cfg := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ApproveDevice(ctx, da.UserCode, testop.User{Email: alice.Email, Password: "wrong"}); err == nil {
		t.Fatal("approve with a wrong password: no error")
	}
	if err := p.ApproveDevice(ctx, da.UserCode, alice); err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	id, err := rp.Verifier(&oidc.Config{ClientID: "switchyard"}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var c claims
	id.Claims(&c)
	if id.Subject != "sub-alice@example.com" || c.Email != alice.Email || strings.Join(c.Groups, ",") != "eng,admins" {
		t.Fatalf("id token: sub %q, claims %+v", id.Subject, c)
	}
}

func TestBrowserFlowAndTamper(t *testing.T) {
	p, rp, cfg := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	verifier := rp.Verifier(&oidc.Config{ClientID: "switchyard"})
	signIn := func() (string, error) {
		pkce := oauth2.GenerateVerifier()
		cb, err := p.SignIn(ctx, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(pkce), oidc.Nonce("n1")), alice)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(cb)
		if u.Query().Get("state") != "st" || !strings.HasPrefix(cb, "http://127.0.0.1:9/callback?") {
			t.Fatalf("callback %s", cb)
		}
		tok, err := cfg.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tok.Extra("id_token").(string)
		id, err := verifier.Verify(ctx, raw)
		if err != nil {
			return "", err
		}
		var c claims
		id.Claims(&c)
		return c.Nonce, nil
	}
	if n, err := signIn(); err != nil || n != "n1" {
		t.Fatalf("honest sign-in: nonce %q, %v", n, err)
	}
	for _, tc := range []struct {
		name   string
		tamper *testop.Tamper
		want   string
	}{
		{"signature", testop.ForgedSignature(), "signature"},
		{"audience", testop.WrongAudience(), "audience"},
		{"issuer", testop.WrongIssuer(), "different provider"},
		{"expired", testop.Expired(), "expired"},
	} {
		p.SetTamper(tc.tamper)
		if _, err := signIn(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: verify: %v, want an error about %s", tc.name, err, tc.want)
		}
	}
	p.SetTamper(testop.WrongNonce())
	if n, err := signIn(); err != nil || n == "n1" {
		t.Errorf("wrong nonce: nonce %q, %v", n, err)
	}
}
