package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
)

// apiFlags say how the CLI reaches the edge's API: flags, else the
// environment, else the admin config file.
var apiFlags = []cli.Flag{
	&cli.StringFlag{Name: "api", Usage: "edge API `URL` (https://host:port)", EnvVars: []string{"SWITCHYARD_API"}},
	&cli.StringFlag{Name: "token", Usage: "admin API `TOKEN`", EnvVars: []string{"SWITCHYARD_TOKEN"}},
	&cli.StringFlag{Name: "ca", Usage: "`FILE` with the CA certificate (PEM) that signed the API's certificate", EnvVars: []string{"SWITCHYARD_CA"}},
	&cli.StringFlag{Name: "config", Usage: "admin config `FILE` written by the edge (default " + client.DefaultConfigPath + ")", EnvVars: []string{"SWITCHYARD_CONFIG"}},
	&cli.BoolFlag{Name: "insecure-http", Usage: "allow an http:// API URL on a loopback address (the token then travels unencrypted); remote http:// is always refused"},
}

// withClient decorates an action: it builds the API client and passes it in.
func withClient(fn func(ctx context.Context, c *cli.Context, api *client.Client) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		api, err := newClient(c)
		if err != nil {
			return err
		}
		return fn(c.Context, c, api)
	}
}

func newClient(c *cli.Context) (*client.Client, error) {
	apiURL, tok, caFile := c.String("api"), c.String("token"), c.String("ca")
	var caPEM []byte
	if caFile != "" {
		var err error
		if caPEM, err = os.ReadFile(caFile); err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
	}
	if apiURL == "" || tok == "" || caPEM == nil {
		path := c.String("config")
		explicit := path != ""
		if !explicit {
			path = client.DefaultConfigPath
		}
		cfg, err := client.LoadConfig(path)
		switch {
		case err == nil:
			apiURL, tok = firstNonEmpty(apiURL, cfg.API), firstNonEmpty(tok, cfg.Token)
			if caPEM == nil && cfg.CA != "" {
				caPEM = []byte(cfg.CA)
			}
		case explicit || !errors.Is(err, os.ErrNotExist):
			return nil, err
		case apiURL == "":
			return nil, fmt.Errorf("no edge API configured: pass --api and --token (or SWITCHYARD_API and SWITCHYARD_TOKEN), or --config FILE; %s does not exist", path)
		}
	}
	var opts []client.Option
	if c.Bool("insecure-http") {
		opts = append(opts, client.AllowInsecureHTTP())
	}
	return client.New(apiURL, tok, caPEM, opts...)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
