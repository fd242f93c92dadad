package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// Sign-in flows of POST /v1/agent/login.
const (
	LoginFlowDevice  = "device"  // RFC 8628: a URL and a code
	LoginFlowBrowser = "browser" // authorization code: a URL to open
)

// LoginStart is the edge's answer to a new sign-in: where the user goes,
// the code they confirm there, and the handle (a secret) the client polls
// with (and a device enrolls with); Interval is in seconds.
type LoginStart struct {
	ID                      string    `json:"id"`
	Flow                    string    `json:"flow"`
	VerificationURI         string    `json:"verification_uri"`
	VerificationURIComplete string    `json:"verification_uri_complete,omitempty"`
	UserCode                string    `json:"user_code,omitempty"`
	Interval                int       `json:"interval"`
	ExpiresAt               time.Time `json:"expires_at"`
}

// LoginStatus is a poll's answer: "pending", or "done" with the identity.
type LoginStatus struct {
	Status   string              `json:"status"`
	Identity *model.UserIdentity `json:"identity,omitempty"`
}

// NewSignIn returns the client a device signs in and enrolls with, before
// it has a token or credential: the edge's API address and the pin of its
// CA (switchyard enrollment ca-pin).
func NewSignIn(api, caPin string) (*Client, error) {
	if caPin == "" {
		return nil, errors.New("sign-in client: no CA pin of the edge (switchyard enrollment ca-pin prints it)")
	}
	return newPinned([]string{api}, "", caPin)
}

// StartLogin starts a sign-in of a device with flow (LoginFlowDevice or
// LoginFlowBrowser).
func (c *Client) StartLogin(ctx context.Context, flow string) (LoginStart, error) {
	return c.startLogin(ctx, flow, "device")
}

// PrintLogin tells the person signing in (as who: "" or "as an admin")
// where to go; what the edge sent is escaped, since it reaches a terminal.
func PrintLogin(w io.Writer, l LoginStart, as string) {
	if as != "" {
		as = " " + as
	}
	if l.UserCode == "" { // the browser flow
		fmt.Fprintf(w, "To sign in%s, open this URL in a browser:\n\n  %s\n\n", as, model.Printable(l.VerificationURI))
	} else {
		fmt.Fprintf(w, "To sign in%s, open %s and enter the code\n\n  %s\n\n",
			as, model.Printable(l.VerificationURI), model.Printable(l.UserCode))
		if l.VerificationURIComplete != "" {
			fmt.Fprintf(w, "Or open this URL, which carries the code:\n\n  %s\n\n", model.Printable(l.VerificationURIComplete))
		}
	}
	fmt.Fprintf(w, "Waiting for the sign-in (until %s; Ctrl-C stops)...\n", l.ExpiresAt.Local().Format(time.TimeOnly))
}

// startLogin starts a sign-in with flow for purpose ("device" or "admin").
func (c *Client) startLogin(ctx context.Context, flow, purpose string) (LoginStart, error) {
	var out LoginStart
	return out, c.do(ctx, http.MethodPost, "/v1/agent/login", nil, map[string]string{"flow": flow, "purpose": purpose}, &out)
}

// PollLogin asks whether the sign-in with handle is done.
func (c *Client) PollLogin(ctx context.Context, handle string) (LoginStatus, error) {
	var out LoginStatus
	return out, c.do(ctx, http.MethodPost, "/v1/agent/login/"+seg(handle), nil, struct{}{}, &out)
}

// WaitLogin polls the sign-in with handle every interval until it is done,
// refused, or ctx ends, and returns the identity it verified.
func (c *Client) WaitLogin(ctx context.Context, l LoginStart) (model.UserIdentity, error) {
	every := time.Duration(max(l.Interval, 1)) * time.Second
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		st, err := c.PollLogin(ctx, l.ID)
		if err != nil {
			return model.UserIdentity{}, err
		}
		if st.Status == "done" && st.Identity != nil {
			return *st.Identity, nil
		}
		select {
		case <-ctx.Done():
			return model.UserIdentity{}, ctx.Err()
		case <-t.C:
		}
	}
}

// EnrollmentRules lists the enrollment rules in the order they are tried.
func (c *Client) EnrollmentRules(ctx context.Context) ([]model.EnrollmentRule, error) {
	var out []model.EnrollmentRule
	return out, c.do(ctx, http.MethodGet, "/v1/enrollment-rules", nil, nil, &out)
}

// AddEnrollmentRule adds an enrollment rule.
func (c *Client) AddEnrollmentRule(ctx context.Context, req model.NewEnrollmentRule) (model.EnrollmentRule, error) {
	var out model.EnrollmentRule
	return out, c.do(ctx, http.MethodPost, "/v1/enrollment-rules", nil, req, &out)
}

// RemoveEnrollmentRule removes the rule named by ref (name or id).
func (c *Client) RemoveEnrollmentRule(ctx context.Context, ref string) (model.EnrollmentRule, error) {
	var out model.EnrollmentRule
	return out, c.do(ctx, http.MethodDelete, "/v1/enrollment-rules/"+seg(ref), nil, nil, &out)
}

// Users lists the users of the enrolled devices.
func (c *Client) Users(ctx context.Context) ([]model.User, error) {
	var out []model.User
	return out, c.do(ctx, http.MethodGet, "/v1/users", nil, nil, &out)
}

// LogoutUser ends the sessions of the user's devices and returns them.
func (c *Client) LogoutUser(ctx context.Context, email string) ([]model.Device, error) {
	var out []model.Device
	return out, c.do(ctx, http.MethodPost, "/v1/users/"+seg(email)+"/logout", nil, nil, &out)
}

// SessionExpired reports whether err is the edge saying that the device's
// user's sign-in ended (model.CodeSessionExpired): sign in again.
func SessionExpired(err error) bool {
	var e *model.Error
	return errors.As(err, &e) && e.Code == model.CodeSessionExpired
}
