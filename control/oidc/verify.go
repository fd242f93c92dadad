package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/switchyard/switchyard/control/model"
)

// Verify checks a raw ID token (signature by the provider's JWKS, issuer,
// audience, expiry, and nonce when one was sent) and returns the identity
// it proves. Its errors are model errors of kind unauthorized naming what
// failed ("id token: audience mismatch: ...").
func (rp *RP) Verify(ctx context.Context, raw, nonce string) (model.UserIdentity, error) {
	if raw == "" {
		return model.UserIdentity{}, refused("the identity provider's token answer has no id_token")
	}
	tok, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		return model.UserIdentity{}, refused(classify(err))
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return model.UserIdentity{}, refused("nonce mismatch: the token's nonce is not the one this sign-in sent")
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return model.UserIdentity{}, refused("claims: " + err.Error())
	}
	email, _ := claims["email"].(string)
	if email == "" {
		return model.UserIdentity{}, refused("no email claim: ask for the email scope, or give the user an email at the identity provider")
	}
	verified := true
	if v, ok := claims["email_verified"]; ok {
		switch v := v.(type) {
		case bool:
			verified = v
		case string:
			verified = v != "false"
		}
	}
	if !verified {
		return model.UserIdentity{}, refused("email " + email + " is not verified (email_verified is false)")
	}
	return model.UserIdentity{Issuer: tok.Issuer, Subject: tok.Subject, Email: email,
		EmailVerified: verified, Groups: groups(claims[rp.groupsClaim])}, nil
}

// groups reads a groups claim: a list of strings or one string; anything
// else (or no claim) is no groups.
func groups(v any) []string {
	switch v := v.(type) {
	case string:
		if v != "" {
			return []string{v}
		}
	case []any:
		var out []string
		for _, g := range v {
			if s, ok := g.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// refused is the error for an ID token the edge does not accept.
func refused(what string) error {
	return model.Errorf(model.KindUnauthorized, "id token: %s", what)
}

// classify names what go-oidc's verification refused.
func classify(err error) string {
	msg := err.Error()
	var expired *gooidc.TokenExpiredError
	switch {
	case errors.As(err, &expired):
		return "expired: " + msg
	case strings.Contains(msg, "audience"):
		return "audience mismatch: " + msg
	case strings.Contains(msg, "different provider"), strings.Contains(msg, "issuer"):
		return "issuer mismatch: " + msg
	case strings.Contains(msg, "signature"):
		return "signature invalid: " + msg
	}
	return "invalid: " + msg
}
