package client

import (
	"context"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// NewAdminSignIn returns the client an admin signs in with (AdminLogin), before
// they have a token: New's rules for the address and the CA, no token.
func NewAdminSignIn(apiURL string, caPEM []byte, opts ...Option) (*Client, error) {
	return New(apiURL, "", caPEM, append(opts, func(o *options) { o.noToken = true })...)
}

// AdminSession is a finished admin sign-in: who, and the bearer token the
// edge that served it accepts until ExpiresAt.
type AdminSession struct {
	Identity  model.UserIdentity
	Token     string
	ExpiresAt time.Time
}

// StartAdminLogin starts an admin sign-in with flow "device" (RFC 8628: a
// URL and a code) or "browser" (a URL to open).
func (c *Client) StartAdminLogin(ctx context.Context, flow string) (LoginStart, error) {
	return c.startLogin(ctx, flow, "admin")
}

// PollAdminLogin asks whether the admin sign-in with handle is done: nil
// while it is pending, the session once it is, or the edge's refusal.
func (c *Client) PollAdminLogin(ctx context.Context, handle string) (*AdminSession, error) {
	var out struct {
		Status         string              `json:"status"`
		Identity       *model.UserIdentity `json:"identity"`
		AdminToken     string              `json:"admin_token"`
		AdminExpiresAt *time.Time          `json:"admin_expires_at"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/agent/login/"+seg(handle), nil, struct{}{}, &out); err != nil {
		return nil, err
	}
	if out.Status != "done" {
		return nil, nil
	}
	if out.Identity == nil || out.AdminToken == "" || out.AdminExpiresAt == nil {
		return nil, model.Errorf(model.KindInternal, "admin sign-in: the edge answered done without an admin session")
	}
	return &AdminSession{Identity: *out.Identity, Token: out.AdminToken, ExpiresAt: *out.AdminExpiresAt}, nil
}

// EndAdminSession ends the admin session the client's token is, on the edge
// that made it.
func (c *Client) EndAdminSession(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/v1/admin/session", nil, nil, nil)
}
