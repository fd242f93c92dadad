package main

import (
	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/agent"
)

func connectorCommand() *cli.Command {
	return &cli.Command{
		Name:  "connector",
		Usage: "run a connector: this host becomes the gateway of its site into the edge",
		Subcommands: []*cli.Command{{
			Name:  "run",
			Usage: "enroll with a tunnel token and forward the site's traffic to and from the edge",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "token", Usage: "tunnel `TOKEN` from switchyard tunnel create", EnvVars: []string{"SWITCHYARD_TUNNEL_TOKEN"}, Required: true},
				&cli.StringFlag{Name: "state-dir", Usage: "`DIR` for the key, the enrollment and the host state", Value: "/var/lib/switchyard-connector"},
				&cli.StringFlag{Name: "tun-name", Usage: "TUN interface `NAME`", Value: agent.DefaultTunName},
				&cli.BoolFlag{Name: "snat", Usage: "masquerade tunnel traffic into the site (for sites that cannot route replies back; hides the true source IP)"},
				debugFlag,
			},
			Action: func(c *cli.Context) error {
				return agent.RunConnector(c.Context, agent.ConnectorConfig{
					Token:    c.String("token"),
					StateDir: c.String("state-dir"),
					TunName:  c.String("tun-name"),
					SNAT:     c.Bool("snat"),
					Version:  version,
					Log:      daemonLog(c, "connector"),
				})
			},
		}},
	}
}
