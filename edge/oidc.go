package edge

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/oidc"
)

// OIDCConfig is the edge's OpenID Connect client at the operator's
// identity provider.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// GroupsClaim names the ID token claim with the user's groups; empty
	// means "groups".
	GroupsClaim string
	// AdminGroup is the group whose members may sign in as admins; empty:
	// admin sign-in is off.
	AdminGroup string
}

func (c *OIDCConfig) adminGroup() string {
	if c == nil {
		return ""
	}
	return c.AdminGroup
}

// startOIDC discovers the identity provider; nil cfg means no sign-in.
func startOIDC(ctx context.Context, cfg *OIDCConfig, apiURL string, log *slog.Logger) (*oidc.RP, error) {
	if cfg == nil {
		return nil, nil
	}
	rp, err := oidc.New(ctx, oidc.Config{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		GroupsClaim: cfg.GroupsClaim, RedirectURL: strings.TrimSuffix(apiURL, "/") + "/v1/login/callback", Log: log})
	if err != nil {
		return nil, fmt.Errorf("edge: sign-in with --oidc-issuer: %w", err)
	}
	log.Info("sign-in with OpenID Connect", "issuer", cfg.Issuer, "callback", strings.TrimSuffix(apiURL, "/")+"/v1/login/callback")
	return rp, nil
}

// loginsOption is rp as api.Options.Logins (a nil *RP is no service).
func loginsOption(rp *oidc.RP) api.Logins {
	if rp == nil {
		return nil
	}
	return rp
}
