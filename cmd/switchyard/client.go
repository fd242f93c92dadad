package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/agent/localapi"
)

var clientStateDir = &cli.StringFlag{Name: "state-dir", Usage: "`DIR` for the key, the device credential and the host state", Value: "/var/lib/switchyard-client"}

func clientCommand() *cli.Command {
	return &cli.Command{
		Name:  "client",
		Usage: "run this device as a client of the edge",
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "enroll (first time, with --token) and send matching traffic through the edge",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "token", Usage: "enrollment `TOKEN` from switchyard device enroll-token create", EnvVars: []string{"SWITCHYARD_ENROLL_TOKEN"}},
					clientStateDir,
					&cli.StringFlag{Name: "tun-name", Usage: "TUN interface `NAME`", Value: agent.DefaultClientTunName},
					&cli.StringFlag{Name: "name", Usage: "device `NAME` (default: the hostname)"},
					&cli.StringFlag{Name: "user", Usage: "`USER` the device expects to belong to; enrollment is refused unless the token names that user (device enroll-token create --user)"},
					protocolFlag,
					wireGuardRetryFlag,
					edgesFlag,
					metricsFlag,
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
					return agent.RunClient(c.Context, agent.ClientConfig{
						Protocol:       proto,
						Edges:          edges,
						WireGuardRetry: c.Duration(wireGuardRetryFlag.Name),
						Token:          c.String("token"),
						StateDir:       c.String("state-dir"),
						TunName:        c.String("tun-name"),
						Name:           c.String("name"),
						User:           c.String("user"),
						Version:        version,
						MetricsListen:  c.String("metrics-listen"),
						Log:            daemonLog(c, "client"),
					})
				},
			},
			{
				Name:      "vnet",
				Usage:     "list the virtual networks, or switch this device into one (through the running client)",
				ArgsUsage: "[NAME|ID]",
				Flags:     []cli.Flag{clientStateDir, outputFlag},
				Action: func(c *cli.Context) error {
					if err := checkArgs(c, 0, 1, "[NAME|ID]"); err != nil {
						return err
					}
					api := localapi.NewClient("client", c.String("state-dir"))
					if c.NArg() == 1 {
						v, err := api.SelectVNet(c.Context, c.Args().First())
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "Switched to virtual network %s (%s)\n", v.Name, v.ID)
						return nil
					}
					vnets, err := api.VNets(c.Context)
					if err != nil {
						return err
					}
					return render(c, vnets, func(w *tabwriter.Writer) {
						row(w, "ID", "NAME", "IS DEFAULT", "COMMENT")
						for _, v := range vnets {
							row(w, v.ID, v.Name, v.IsDefault, v.Comment)
						}
					})
				},
			},
		},
	}
}
