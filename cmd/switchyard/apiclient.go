package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// apiFlags say how the CLI reaches the edge's API: flags, else the
// environment, else the admin session of switchyard login, else the admin
// config file.
var apiFlags = []cli.Flag{
	&cli.StringFlag{Name: "api", Usage: "edge API `URL` (https://host:port)", EnvVars: []string{"SWITCHYARD_API"}},
	&cli.StringFlag{Name: "token", Usage: "admin API `TOKEN`", EnvVars: []string{"SWITCHYARD_TOKEN"}},
	&cli.StringFlag{Name: "ca", Usage: "`FILE` with the CA certificate (PEM) that signed the API's certificate", EnvVars: []string{"SWITCHYARD_CA"}},
	&cli.StringFlag{Name: "config", Usage: "admin config `FILE` written by the edge (default " + client.DefaultConfigPath + ")", EnvVars: []string{"SWITCHYARD_CONFIG"}},
	sessionFlag,
	&cli.BoolFlag{Name: "insecure-http", Usage: "allow an http:// API URL on a loopback address (the token then travels unencrypted); remote http:// is always refused"},
}

// withClient decorates an action: it builds the API client and passes it in.
// An edge that no longer knows the admin session (it restarted) is told
// apart from a wrong token.
func withClient(fn func(ctx context.Context, c *cli.Context, api *client.Client) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		ep, err := resolveAPI(c, true)
		if err != nil {
			return err
		}
		api, err := ep.client(c)
		if err != nil {
			return err
		}
		err = fn(c.Context, c, api)
		var e *model.Error
		if ep.session != nil && errors.As(err, &e) && e.Kind == model.KindUnauthorized {
			return &model.Error{Kind: e.Kind, Code: e.Code, Message: fmt.Sprintf("%s: the edge no longer accepts the admin session of %s (it restarted?): run switchyard login", e.Message, ep.session.Email)}
		}
		return err
	}
}

// endpoint is where the CLI sends its requests and with what token.
type endpoint struct {
	api     string
	token   string
	ca      []byte
	session *adminSessionFile // the token's source, if it is the admin session
}

func (ep endpoint) client(c *cli.Context) (*client.Client, error) {
	return client.New(ep.api, ep.token, ep.ca, clientOptions(c)...)
}

func clientOptions(c *cli.Context) []client.Option {
	if c.Bool("insecure-http") {
		return []client.Option{client.AllowInsecureHTTP()}
	}
	return nil
}

// resolveAPI finds the API address, CA and (with needToken) token: flags
// and environment first, then the admin session for the same API (whose
// end is checked), then the admin config file.
func resolveAPI(c *cli.Context, needToken bool) (endpoint, error) {
	ep := endpoint{api: c.String("api"), token: c.String("token")}
	if caFile := c.String("ca"); caFile != "" {
		var err error
		if ep.ca, err = os.ReadFile(caFile); err != nil {
			return ep, fmt.Errorf("read CA: %w", err)
		}
	}
	if path, err := sessionPath(c); err == nil && ep.token == "" { // no configuration directory: no session
		sess, err := loadSession(path)
		if err != nil {
			return ep, err
		}
		if sess != nil && (ep.api == "" || sameAPI(ep.api, sess.API)) {
			ep.api = sess.API
			if ep.ca == nil && sess.CA != "" {
				ep.ca = []byte(sess.CA)
			}
			if needToken {
				if err := sess.expired(time.Now()); err != nil {
					return ep, err
				}
				ep.token, ep.session = sess.Token, sess
			}
		}
	}
	if ep.api == "" || (needToken && ep.token == "") || ep.ca == nil {
		path := c.String("config")
		explicit := path != ""
		if !explicit {
			path = client.DefaultConfigPath
		}
		cfg, err := client.LoadConfig(path)
		switch {
		case err == nil:
			ep.api = firstNonEmpty(ep.api, cfg.API)
			if needToken {
				ep.token = firstNonEmpty(ep.token, cfg.Token)
			}
			if ep.ca == nil && cfg.CA != "" {
				ep.ca = []byte(cfg.CA)
			}
		case explicit || !errors.Is(err, os.ErrNotExist):
			return ep, err
		case ep.api == "":
			return ep, fmt.Errorf("no edge API configured: pass --api and --token (or SWITCHYARD_API and SWITCHYARD_TOKEN), run switchyard login, or --config FILE; %s does not exist", path)
		}
	}
	return ep, nil
}

// sameAPI reports whether two API URLs name the same edge.
func sameAPI(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) &&
		strings.TrimSuffix(ua.Path, "/") == strings.TrimSuffix(ub.Path, "/")
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
