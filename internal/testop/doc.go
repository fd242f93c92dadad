// Package testop runs a real OpenID provider in process for tests: the
// zitadel/oidc `op` package with an in-memory storage, users with passwords
// and groups, and one confidential client allowed the authorization code
// grant (with PKCE) and the device authorization grant (RFC 8628). A test
// plays the user over HTTP with ApproveDevice and SignIn, and can make the
// provider mint bad ID tokens (SetTamper) to check a relying party's refusals
// against the real flow.
//
// It imports only the standard library, zitadel/oidc (with its example
// storage) and go-jose; it is test support, never imported by a daemon.
package testop
