package testop

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is a user of the provider.
type User struct {
	Email    string
	Password string
	Groups   []string
	// Subject is the user's "sub"; empty means "sub-" and the email.
	Subject string
	// EmailUnverified makes the provider say email_verified false.
	EmailUnverified bool
}

func (u User) subject() string {
	if u.Subject != "" {
		return u.Subject
	}
	return "sub-" + u.Email
}

// Config is what a provider starts with.
type Config struct {
	// Addr is the address to listen on; empty means 127.0.0.1:0.
	Addr         string
	ClientID     string
	ClientSecret string
	// RedirectURIs are the client's allowed redirect URIs; more can be
	// allowed later with AllowRedirectURI.
	RedirectURIs []string
	Users        []User
	// GroupsClaim names the claim carrying the user's groups; empty means
	// "groups".
	GroupsClaim string
	// PollInterval is the device flow's polling interval; zero means 1s.
	PollInterval time.Duration
}

// Provider is a running OpenID provider.
type Provider struct {
	issuer   string
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
	storage  *opStorage
	client   *client
	provider *op.Provider

	approvals sync.Map // approval cookie → pendingApproval

	mu     sync.Mutex
	tamper *Tamper
}

// Start starts a provider on cfg.Addr, serving plain HTTP (loopback only).
func Start(cfg Config) (*Provider, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("testop: start: a client id and secret are required")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testop: listen on %s: %w", addr, err)
	}
	p := &Provider{issuer: "http://" + ln.Addr().String(), ln: ln, done: make(chan struct{})}
	claim := cfg.GroupsClaim
	if claim == "" {
		claim = "groups"
	}
	p.client = &client{id: cfg.ClientID}
	for _, u := range cfg.RedirectURIs {
		p.client.allowRedirect(u)
	}
	// The example storage checks secrets and device authorizations against
	// its own client table; GetClientByClientID answers with p.client.
	clients := map[string]*storage.Client{cfg.ClientID: storage.WebClient(cfg.ClientID, cfg.ClientSecret)}
	us := &users{list: cfg.Users}
	p.storage = &opStorage{Storage: storage.NewStorageWithClients(us, clients), client: p.client, users: us, groupsClaim: claim}

	interval := cfg.PollInterval
	if interval == 0 {
		interval = time.Second
	}
	var key [32]byte
	rand.Read(key[:])
	opCfg := &op.Config{
		CryptoKey:          key,
		CodeMethodS256:     true,
		AuthMethodPost:     true,
		SupportedUILocales: []language.Tag{language.English},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     5 * time.Minute,
			PollInterval: interval,
			UserFormPath: devicePath,
			UserCode:     op.UserCodeBase20,
		},
	}
	p.provider, err = op.NewProvider(opCfg, p.storage, op.StaticIssuer(p.issuer), op.WithAllowInsecure())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("testop: new provider: %w", err)
	}
	mux := http.NewServeMux()
	p.routes(mux)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		p.srv.Serve(ln)
	}()
	return p, nil
}

// Issuer is the provider's issuer URL (its discovery document lies under it).
func (p *Provider) Issuer() string { return p.issuer }

// AllowRedirectURI adds a redirect URI to the client's allowed ones.
func (p *Provider) AllowRedirectURI(uri string) { p.client.allowRedirect(uri) }

// Close stops the provider and waits for its server.
func (p *Provider) Close() error {
	err := p.srv.Close()
	<-p.done
	return err
}

// SetTamper makes the token endpoint answer with ID tokens altered by t;
// nil restores honest tokens.
func (p *Provider) SetTamper(t *Tamper) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = t
}

func (p *Provider) currentTamper() *Tamper {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tamper
}
