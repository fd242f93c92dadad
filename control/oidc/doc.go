// Package oidc is the edge's OpenID Connect relying party: it discovers the
// operator's identity provider, runs sign-ins by the device authorization
// grant (RFC 8628) and by the browser (authorization code with PKCE, nonce
// and state), verifies the ID tokens (go-oidc: signature, issuer, audience,
// expiry, nonce) and keeps the pending sign-ins in a bounded in-memory
// table, each behind a secret handle that yields its identity once.
//
// It imports control/model, go-oidc and golang.org/x/oauth2; never the API
// server, the registry or the data plane.
package oidc
