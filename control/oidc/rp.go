package oidc

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Defaults of Config.
const (
	DefaultGroupsClaim = "groups"
	DefaultPendingTTL  = 10 * time.Minute
	DefaultMaxPending  = 1024
)

// Config configures the relying party.
type Config struct {
	// Issuer is the identity provider's issuer URL; its discovery document
	// is at Issuer + "/.well-known/openid-configuration".
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is the browser flow's callback: the edge's
	// /v1/login/callback as browsers reach it. Empty: browser sign-in is
	// off until SetRedirectURL.
	RedirectURL string
	// GroupsClaim names the ID token claim with the user's groups; empty
	// means DefaultGroupsClaim.
	GroupsClaim string
	// PendingTTL is how long a sign-in waits to be finished and used; zero
	// means DefaultPendingTTL.
	PendingTTL time.Duration
	// MaxPending bounds the pending sign-ins; zero means DefaultMaxPending.
	MaxPending int
	// HTTPClient reaches the identity provider; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Log receives sign-in failures; nil discards them.
	Log *slog.Logger
}

// RP is a relying party of one identity provider. Close it to stop the
// device flows' polling.
type RP struct {
	cfg         Config
	groupsClaim string
	provider    *gooidc.Provider
	verifier    *gooidc.IDTokenVerifier
	log         *slog.Logger

	ctx    context.Context // the device polls' context; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	redirectURL string
	logins      *table
}

// Scopes are what the relying party asks the provider for.
var Scopes = []string{gooidc.ScopeOpenID, "email", "profile", "groups"}

// New discovers cfg.Issuer and returns its relying party.
func New(ctx context.Context, cfg Config) (*RP, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, fmt.Errorf("oidc: an issuer and a client id are required")
	}
	if cfg.HTTPClient != nil {
		ctx = gooidc.ClientContext(ctx, cfg.HTTPClient)
	}
	p, err := gooidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discover issuer %s: %w", cfg.Issuer, err)
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}
	if cfg.PendingTTL == 0 {
		cfg.PendingTTL = DefaultPendingTTL
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rp := &RP{cfg: cfg, groupsClaim: cfg.GroupsClaim, provider: p, log: log, redirectURL: cfg.RedirectURL,
		verifier: p.Verifier(&gooidc.Config{ClientID: cfg.ClientID}),
		logins:   newTable(cfg.MaxPending, cfg.PendingTTL, time.Now)}
	rp.ctx, rp.cancel = context.WithCancel(context.Background())
	if cfg.HTTPClient != nil {
		rp.ctx = gooidc.ClientContext(rp.ctx, cfg.HTTPClient)
	}
	return rp, nil
}

// Issuer is the provider's issuer URL.
func (rp *RP) Issuer() string { return rp.cfg.Issuer }

// SetRedirectURL sets the browser flow's callback URL, when it is known only
// after the API listens.
func (rp *RP) SetRedirectURL(u string) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.redirectURL = u
}

// oauth2Config is the OAuth 2.0 client of the provider, with the current
// redirect URL.
func (rp *RP) oauth2Config() *oauth2.Config {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return &oauth2.Config{ClientID: rp.cfg.ClientID, ClientSecret: rp.cfg.ClientSecret,
		Endpoint: rp.provider.Endpoint(), RedirectURL: rp.redirectURL, Scopes: Scopes}
}

// Close stops the device flows' polling and waits for it.
func (rp *RP) Close() error {
	rp.cancel()
	rp.wg.Wait()
	return nil
}
