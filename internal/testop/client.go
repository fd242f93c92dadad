package testop

import (
	"slices"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client is the provider's one confidential client: authorization code and
// device code grants, the ID token carrying the user's claims (email,
// groups) as real providers do.
type client struct {
	id string

	mu        sync.Mutex
	redirects []string
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string { return c.id }

func (c *client) RedirectURIs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.redirects)
}

func (c *client) allowRedirect(uri string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.redirects, uri) {
		c.redirects = append(c.redirects, uri)
	}
}

func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) LoginURL(id string) string            { return loginPath + "?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *client) DevMode() bool                        { return true } // http redirect URIs on loopback
func (c *client) IsScopeAllowed(scope string) bool     { return scope == "groups" }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeDeviceCode}
}

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
