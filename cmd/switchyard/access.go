package main

import (
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/agent"
)

func accessCommand() *cli.Command {
	return &cli.Command{
		Name:  "access",
		Usage: "reach a host in a site through the tunnel, without root",
		Subcommands: []*cli.Command{
			{
				Name:  "tcp",
				Usage: "forward a local port (or stdin and stdout) to HOST:PORT in a site, through the running userspace client or a session of its own",
				Description: "With a client running with the same state dir in userspace mode, access tcp dials through it;\n" +
					"otherwise it starts its own userspace session with the state dir's enrolled device for as long as it runs.\n" +
					"For ssh: ssh -o ProxyCommand='switchyard access tcp --stdio --destination %h:%p' HOST",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "destination", Usage: "`HOST:PORT` in a site to connect to", Required: true},
					&cli.StringFlag{Name: "listener", Usage: "accept on the local TCP `ADDR`, e.g. 127.0.0.1:2222"},
					&cli.BoolFlag{Name: "stdio", Usage: "carry one connection on stdin and stdout (ssh ProxyCommand)"},
					&cli.StringFlag{Name: "state-dir", Usage: "the client's state `DIR`", Value: clientStateDir.Value},
					protocolFlag,
					edgesFlag,
					debugFlag,
				},
				Action: func(c *cli.Context) error {
					proto, err := parseProtocol(c)
					if err != nil {
						return err
					}
					edges, err := parseEdges(c)
					if err != nil {
						return err
					}
					log := daemonLog(c, "access")
					if c.Bool("stdio") && !c.Bool("debug") { // ssh shows a ProxyCommand's stderr
						log = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn})).With("daemon", "access")
					}
					return agent.RunAccess(c.Context, agent.AccessConfig{
						StateDir:    c.String("state-dir"),
						Destination: c.String("destination"),
						Listener:    c.String("listener"),
						Stdio:       c.Bool("stdio"),
						Stdin:       c.App.Reader,
						Stdout:      c.App.Writer,
						Protocol:    proto,
						Edges:       edges,
						Version:     version,
						Log:         log,
					})
				},
			},
		},
	}
}
