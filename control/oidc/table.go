package oidc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// pending is one sign-in in the table.
type pending struct {
	login   Login
	expires time.Time

	// The browser flow's secrets: the state names the sign-in in the
	// callback, the nonce and PKCE verifier tie the tokens to it.
	state, nonce, verifier string
	redirect               string // where the callback sends the browser; empty: a page

	done     bool
	identity model.UserIdentity
	err      error              // the sign-in failed: what the polls answer
	cancel   context.CancelFunc // stops a device flow's polling
}

// table holds the pending sign-ins, at most max, each for ttl; its caller
// holds RP.mu.
type table struct {
	max     int
	ttl     time.Duration
	now     func() time.Time
	byID    map[string]*pending
	byState map[string]*pending
}

func newTable(max int, ttl time.Duration, now func() time.Time) *table {
	return &table{max: max, ttl: ttl, now: now, byID: map[string]*pending{}, byState: map[string]*pending{}}
}

// handle returns 32 random bytes, base64url-encoded.
func handle() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// add puts p in the table under a new handle, after dropping expired
// sign-ins; a full table refuses it.
func (t *table) add(p *pending) error {
	t.expire()
	if len(t.byID) >= t.max {
		return model.Errorf(model.KindUnavailable, "too many sign-ins pending (%d): try again in a few minutes", t.max)
	}
	p.login.ID = handle()
	if p.expires.IsZero() || p.expires.After(t.now().Add(t.ttl)) {
		p.expires = t.now().Add(t.ttl)
	}
	p.login.ExpiresAt = p.expires
	t.byID[p.login.ID] = p
	if p.state != "" {
		t.byState[p.state] = p
	}
	return nil
}

// get returns the live sign-in of id.
func (t *table) get(id string) (*pending, error) {
	p := t.byID[id]
	if p == nil || !t.now().Before(p.expires) {
		if p != nil {
			t.remove(p)
		}
		return nil, model.Errorf(model.KindUnauthorized, "sign-in not found: it is unknown, was used, or expired (sign-ins last %s): start again", t.ttl)
	}
	return p, nil
}

// byCallbackState returns the live browser sign-in of a callback's state.
func (t *table) byCallbackState(state string) (*pending, error) {
	p := t.byState[state]
	if p == nil {
		return nil, model.Errorf(model.KindUnauthorized, "sign-in callback: unknown or expired state: start the sign-in again")
	}
	return t.get(p.login.ID)
}

func (t *table) remove(p *pending) {
	delete(t.byID, p.login.ID)
	if p.state != "" {
		delete(t.byState, p.state)
	}
	if p.cancel != nil {
		p.cancel()
	}
}

func (t *table) expire() {
	now := t.now()
	for _, p := range t.byID {
		if !now.Before(p.expires) {
			t.remove(p)
		}
	}
}

// len is the number of sign-ins in the table, expired or not.
func (t *table) len() int { return len(t.byID) }
