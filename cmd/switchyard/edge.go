package main

import (
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/edge"
)

func edgeCommand() *cli.Command {
	return &cli.Command{
		Name:  "edge",
		Usage: "run the edge: control API and store (the data plane joins it later)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Usage: "`DIR` for the store, CA, keys and admin config", Value: "/var/lib/switchyard"},
			&cli.StringFlag{Name: "api-listen", Usage: "`ADDR` the control API listens on", Value: "127.0.0.1:7443"},
			&cli.StringFlag{Name: "api-public-url", Usage: "`URL` agents use to reach the API (default: https:// and the listening address)"},
			&cli.StringFlag{Name: "public-addr", Usage: "`HOST:PORT` of the WireGuard listener as agents reach it; carried in tokens"},
			&cli.BoolFlag{Name: "debug", Usage: "log at debug level"},
		},
		Action: func(c *cli.Context) error {
			level := slog.LevelInfo
			if c.Bool("debug") {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
			return edge.Run(c.Context, edge.Config{
				DataDir:      c.String("data-dir"),
				APIListen:    c.String("api-listen"),
				APIPublicURL: c.String("api-public-url"),
				PublicAddr:   c.String("public-addr"),
				Log:          log.With("component", "edge"),
				Announce:     c.App.Writer,
			})
		},
	}
}
