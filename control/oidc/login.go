package oidc

import (
	"context"
	"errors"
	"net/url"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/switchyard/switchyard/control/model"
)

// Flow is how a user signs in.
type Flow string

// The flows.
const (
	FlowDevice  Flow = "device"  // RFC 8628: a URL and a code to type in elsewhere
	FlowBrowser Flow = "browser" // a redirect to the provider and back to /v1/login/callback
)

// Purpose is what a sign-in is for.
type Purpose string

// The purposes.
const (
	PurposeDevice Purpose = "device" // enrolling a device as the user
	PurposeAdmin  Purpose = "admin"  // an admin session (API and console)
)

// Login is a started sign-in, as POST /v1/agent/login answers it. ID is
// its handle: a secret that yields the identity once.
type Login struct {
	ID      string  `json:"id"`
	Flow    Flow    `json:"flow"`
	Purpose Purpose `json:"purpose"`
	// VerificationURI is where the user goes: the provider's device page,
	// or for the browser flow the authorization URL to open.
	VerificationURI         string    `json:"verification_uri"`
	VerificationURIComplete string    `json:"verification_uri_complete,omitempty"`
	UserCode                string    `json:"user_code,omitempty"`
	Interval                int       `json:"interval"` // seconds between polls
	ExpiresAt               time.Time `json:"expires_at"`
}

// Result is a sign-in's state as a poll sees it.
type Result struct {
	Done     bool
	Purpose  Purpose
	Identity model.UserIdentity // when Done
}

// Start begins a sign-in. redirect, for the browser flow, is a path on the
// edge the callback sends the browser to when it is done (the console's);
// empty shows a page saying to return to the terminal.
func (rp *RP) Start(ctx context.Context, flow Flow, purpose Purpose, redirect string) (Login, error) {
	if purpose != PurposeDevice && purpose != PurposeAdmin {
		return Login{}, model.Errorf(model.KindInvalid, "sign-in purpose %q is neither device nor admin", purpose)
	}
	switch flow {
	case FlowDevice:
		return rp.startDevice(ctx, purpose)
	case FlowBrowser:
		return rp.startBrowser(purpose, redirect)
	}
	return Login{}, model.Errorf(model.KindInvalid, "sign-in flow %q is neither device nor browser", flow)
}

func (rp *RP) startDevice(ctx context.Context, purpose Purpose) (Login, error) {
	if rp.provider.Endpoint().DeviceAuthURL == "" {
		return Login{}, model.Errorf(model.KindInvalid, "sign-in by device code: the identity provider %s has no device_authorization_endpoint: use the browser flow", rp.cfg.Issuer)
	}
	conf := rp.oauth2Config()
	if rp.cfg.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, rp.cfg.HTTPClient)
	}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return Login{}, model.Errorf(model.KindUnavailable, "sign-in by device code: device authorization at %s: %v", rp.cfg.Issuer, err)
	}
	p := &pending{login: Login{Flow: FlowDevice, Purpose: purpose, VerificationURI: da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete, UserCode: da.UserCode, Interval: int(da.Interval)}}
	if !da.Expiry.IsZero() {
		p.expires = da.Expiry
	}
	if p.login.Interval == 0 {
		p.login.Interval = 5 // RFC 8628 3.2
	}
	rp.mu.Lock()
	err = rp.logins.add(p)
	var pollCtx context.Context
	if err == nil {
		pollCtx, p.cancel = context.WithDeadline(rp.ctx, p.expires) // the table's remove calls it
	}
	rp.mu.Unlock()
	if err != nil {
		return Login{}, err
	}
	if rp.cfg.HTTPClient != nil {
		pollCtx = context.WithValue(pollCtx, oauth2.HTTPClient, rp.cfg.HTTPClient)
	}
	rp.wg.Add(1)
	go func() {
		defer rp.wg.Done()
		tok, err := conf.DeviceAccessToken(pollCtx, da)
		if err != nil {
			if pollCtx.Err() != nil && rp.ctx.Err() != nil {
				return // closing
			}
			rp.finish(p, model.UserIdentity{}, model.Errorf(model.KindUnauthorized, "sign-in by device code: %v", err))
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		id, err := rp.Verify(pollCtx, raw, "")
		rp.finish(p, id, err)
	}()
	return p.login, nil
}

func (rp *RP) startBrowser(purpose Purpose, redirect string) (Login, error) {
	conf := rp.oauth2Config()
	if conf.RedirectURL == "" {
		return Login{}, model.Errorf(model.KindInvalid, "sign-in by browser: the edge has no callback URL configured")
	}
	p := &pending{login: Login{Flow: FlowBrowser, Purpose: purpose, Interval: 2},
		state: handle(), nonce: handle(), verifier: oauth2.GenerateVerifier(), redirect: redirect}
	p.login.VerificationURI = conf.AuthCodeURL(p.state, oauth2.S256ChallengeOption(p.verifier), gooidc.Nonce(p.nonce))
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if err := rp.logins.add(p); err != nil {
		return Login{}, err
	}
	return p.login, nil
}

// finish records a sign-in's outcome; a refused token leaves only the error.
func (rp *RP) finish(p *pending, id model.UserIdentity, err error) {
	if err != nil {
		rp.log.Warn("sign-in refused", "flow", p.login.Flow, "purpose", p.login.Purpose, "err", err)
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	p.done, p.identity, p.err = err == nil, id, err
}

// Callback finishes a browser sign-in from the query of the provider's
// redirect to /v1/login/callback: it exchanges the code (with the PKCE
// verifier) and verifies the ID token (with the nonce). It returns the path
// to send the browser to (empty: none) and the identity.
func (rp *RP) Callback(ctx context.Context, q url.Values) (string, model.UserIdentity, error) {
	rp.mu.Lock()
	p, err := rp.logins.byCallbackState(q.Get("state"))
	rp.mu.Unlock()
	if err != nil {
		return "", model.UserIdentity{}, err
	}
	id, err := rp.exchange(ctx, p, q)
	rp.finish(p, id, err)
	return p.redirect, id, err
}

func (rp *RP) exchange(ctx context.Context, p *pending, q url.Values) (model.UserIdentity, error) {
	if e := q.Get("error"); e != "" {
		return model.UserIdentity{}, model.Errorf(model.KindUnauthorized, "sign-in by browser: the identity provider answered %s: %s", e, q.Get("error_description"))
	}
	if q.Get("code") == "" {
		return model.UserIdentity{}, model.Errorf(model.KindInvalid, "sign-in callback: no code")
	}
	if rp.cfg.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, rp.cfg.HTTPClient)
	}
	tok, err := rp.oauth2Config().Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		return model.UserIdentity{}, model.Errorf(model.KindUnauthorized, "sign-in by browser: code exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	return rp.Verify(ctx, raw, p.nonce)
}

// Poll returns a sign-in's state, or the error it failed with.
func (rp *RP) Poll(handle string) (Result, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	p, err := rp.logins.get(handle)
	if err != nil {
		return Result{}, err
	}
	if p.err != nil {
		return Result{}, p.err
	}
	return Result{Done: p.done, Purpose: p.login.Purpose, Identity: p.identity}, nil
}

// ErrPending is the error of Take on a sign-in the user has not finished.
var ErrPending = errors.New("sign-in is still pending")

// Take returns a finished sign-in's identity once and removes it; a
// sign-in for another purpose is refused and kept.
func (rp *RP) Take(handle string, purpose Purpose) (model.UserIdentity, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	p, err := rp.logins.get(handle)
	if err != nil {
		return model.UserIdentity{}, err
	}
	if p.login.Purpose != purpose {
		return model.UserIdentity{}, model.Errorf(model.KindForbidden, "sign-in was started for purpose %s, not %s", p.login.Purpose, purpose)
	}
	if p.err != nil {
		rp.logins.remove(p)
		return model.UserIdentity{}, p.err
	}
	if !p.done {
		return model.UserIdentity{}, &model.Error{Kind: model.KindConflict, Code: model.CodeConflict, Message: ErrPending.Error() + ": finish it at " + p.login.VerificationURI + " first"}
	}
	rp.logins.remove(p)
	return p.identity, nil
}

// Identity returns the identity of a finished device-purpose sign-in once:
// what enrollment asks for (DeviceEnrollment.Login).
func (rp *RP) Identity(ctx context.Context, handle string) (model.UserIdentity, error) {
	return rp.Take(handle, PurposeDevice)
}

// Pending is the number of sign-ins in the table.
func (rp *RP) Pending() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.logins.len()
}
