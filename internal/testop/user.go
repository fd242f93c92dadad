package testop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
)

// browser is a user's browser: a cookie jar, redirects not followed past
// the provider (the relying party's callback is the caller's business).
func (p *Provider) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

func do(ctx context.Context, c *http.Client, method, u string, form url.Values) (*http.Response, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

// ApproveDevice plays the user of a device authorization: it opens the
// verification page, signs in as user and allows the device.
func (p *Provider) ApproveDevice(ctx context.Context, userCode string, user User) error {
	return p.answerDevice(ctx, userCode, user, "allowed")
}

// DenyDevice plays a user who signs in and denies the device.
func (p *Provider) DenyDevice(ctx context.Context, userCode string, user User) error {
	return p.answerDevice(ctx, userCode, user, "denied")
}

func (p *Provider) answerDevice(ctx context.Context, userCode string, user User, action string) error {
	c := p.browser()
	resp, _, err := do(ctx, c, http.MethodGet, p.issuer+devicePath+"?user_code="+url.QueryEscape(userCode), nil)
	if err != nil {
		return fmt.Errorf("testop: open verification page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("testop: open verification page: %s", resp.Status)
	}
	resp, body, err := do(ctx, c, http.MethodPost, p.issuer+deviceLoginPath,
		url.Values{"user_code": {userCode}, "username": {user.Email}, "password": {user.Password}})
	if err != nil {
		return fmt.Errorf("testop: sign in for device: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("testop: sign in for device: %s: %s", resp.Status, strings.TrimSpace(body))
	}
	resp, body, err = do(ctx, c, http.MethodPost, p.issuer+deviceConfirmPath, url.Values{"action": {action}})
	if err != nil {
		return fmt.Errorf("testop: confirm device: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("testop: confirm device: %s: %s", resp.Status, strings.TrimSpace(body))
	}
	return nil
}

// SignIn plays the user of a browser sign-in: it follows authURL (the
// relying party's redirect to the provider) to the login page, signs in as
// user, and returns the URL the provider redirects the browser to: the
// relying party's callback with code and state (or error).
func (p *Provider) SignIn(ctx context.Context, authURL string, user User) (string, error) {
	c := p.browser()
	u := authURL
	for range 10 {
		resp, body, err := do(ctx, c, http.MethodGet, u, nil)
		if err != nil {
			return "", fmt.Errorf("testop: sign in: %w", err)
		}
		loc, err := resp.Location()
		if errors.Is(err, http.ErrNoLocation) {
			return "", fmt.Errorf("testop: sign in: %s answered %s without a redirect: %s", u, resp.Status, strings.TrimSpace(body))
		}
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(loc.String(), p.issuer+"/") {
			return loc.String(), nil // the relying party's callback
		}
		if loc.Path != loginPath {
			u = loc.String()
			continue
		}
		id := loc.Query().Get("authRequestID")
		resp, body, err = do(ctx, c, http.MethodPost, p.issuer+loginPath,
			url.Values{"id": {id}, "username": {user.Email}, "password": {user.Password}})
		if err != nil {
			return "", fmt.Errorf("testop: sign in: %w", err)
		}
		if resp.StatusCode != http.StatusFound {
			return "", fmt.Errorf("testop: sign in as %s: %s: %s", user.Email, resp.Status, strings.TrimSpace(body))
		}
		next, err := resp.Location()
		if err != nil {
			return "", err
		}
		u = next.String()
	}
	return "", errors.New("testop: sign in: too many redirects")
}
