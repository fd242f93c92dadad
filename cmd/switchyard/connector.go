package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/model"
)

func connectorCommand() *cli.Command {
	return &cli.Command{
		Name:  "connector",
		Usage: "run a connector: this host becomes the gateway of its site into the edge",
		Subcommands: []*cli.Command{{
			Name:  "run",
			Usage: "enroll with a tunnel token and forward the site's traffic to and from the edge",
			Flags: withEnv(
				&cli.StringFlag{Name: "token", Usage: "tunnel `TOKEN` from switchyard tunnel create", EnvVars: []string{"SWITCHYARD_TUNNEL_TOKEN"}, Required: true},
				stateDirFlag,
				&cli.StringFlag{Name: "tun-name", Usage: "TUN interface `NAME`", Value: agent.DefaultTunName},
				&cli.BoolFlag{Name: "snat", Usage: "masquerade tunnel traffic into the site (for sites that cannot route replies back; hides the true source IP)"},
				&cli.UintFlag{Name: "priority", Usage: "rank `N` (0-255) of this replica among its tunnel's; the highest up is active", Value: 100},
				protocolFlag,
				wireGuardRetryFlag,
				edgesFlag,
				metricsFlag,
				debugFlag,
			),
			Action: func(c *cli.Context) error {
				if c.Uint("priority") > 255 {
					return fmt.Errorf("--priority %d is out of range (0-255)", c.Uint("priority"))
				}
				proto, err := parseProtocol(c)
				if err != nil {
					return err
				}
				edges, err := parseEdges(c)
				if err != nil {
					return err
				}
				return agent.RunConnector(c.Context, agent.ConnectorConfig{
					Protocol:       proto,
					Edges:          edges,
					WireGuardRetry: c.Duration(wireGuardRetryFlag.Name),
					Token:          c.String("token"),
					StateDir:       c.String("state-dir"),
					TunName:        c.String("tun-name"),
					SNAT:           c.Bool("snat"),
					Priority:       uint8(c.Uint("priority")),
					Version:        version,
					MetricsListen:  c.String("metrics-listen"),
					Log:            daemonLog(c, "connector"),
				})
			},
		},
			{
				Name:  "status",
				Usage: "print the running connector's view of its tunnel; exit status 1 unless the edge answers it",
				Flags: []cli.Flag{stateDirFlag, outputFlag},
				Action: func(c *cli.Context) error {
					st, err := localapi.NewClient("connector", c.String("state-dir")).Status(c.Context)
					if err != nil {
						return err
					}
					if err := render(c, st, func(w *tabwriter.Writer) {
						if st.Edge != "" { // on edges of a cluster: which carries the traffic, which stand by
							row(w, "PID", "HEALTHY", "ACTIVE", "PREFERRED", "PRIORITY", "RTT", "PATH MTU", "EDGE", "STANDBY", "UPDATED")
							row(w, st.PID, st.Healthy, st.Active, st.Preferred, st.Priority, st.RTT, st.PathMTU.String(), st.Edge, strings.Join(st.Standby, ","), st.UpdatedAt)
							return
						}
						row(w, "PID", "HEALTHY", "ACTIVE", "PREFERRED", "PRIORITY", "RTT", "PATH MTU", "UPDATED")
						row(w, st.PID, st.Healthy, st.Active, st.Preferred, st.Priority, st.RTT, st.PathMTU.String(), st.UpdatedAt)
					}); err != nil {
						return err
					}
					if !st.Healthy {
						return cli.Exit("", 1)
					}
					return nil
				},
			},
			{
				Name:  "promote",
				Usage: "ask the edge, through the running connector, to make this host's replica active (keepalived notify MASTER)",
				Flags: []cli.Flag{stateDirFlag},
				Action: func(c *cli.Context) error {
					_, err := localapi.NewClient("connector", c.String("state-dir")).SetPreferred(c.Context, true)
					return err
				},
			},
			{
				Name:  "demote",
				Usage: "withdraw the running connector's claim to be active (keepalived notify BACKUP or FAULT)",
				Flags: []cli.Flag{stateDirFlag},
				Action: func(c *cli.Context) error {
					_, err := localapi.NewClient("connector", c.String("state-dir")).SetPreferred(c.Context, false)
					return err
				},
			},
		},
	}
}

// stateDirFlag names the connector's state directory.
var stateDirFlag = &cli.StringFlag{Name: "state-dir", Usage: "`DIR` for the key, the enrollment and the host state", Value: "/var/lib/switchyard-connector"}

// protocolFlag chooses the agents' transport to the edge.
var protocolFlag = &cli.StringFlag{
	Name:  "protocol",
	Usage: "how to reach the edge: wireguard, masque (CONNECT-IP over HTTP/3, for networks that block WireGuard) or auto (WireGuard, falling back to MASQUE)",
	Value: string(agent.ProtocolWireGuard),
}

// wireGuardRetryFlag sets how long --protocol auto stays on MASQUE.
var wireGuardRetryFlag = &cli.DurationFlag{
	Name:  "wireguard-retry",
	Usage: "with --protocol auto: how long to stay on MASQUE before trying WireGuard again",
	Value: agent.DefaultWireGuardRetry,
}

// edgesFlag sets how many edges of a cluster an agent keeps sessions to.
var edgesFlag = &cli.IntFlag{
	Name:  "edges",
	Usage: "in a cluster, keep WireGuard sessions to `N` edges, one active and the others standby, and fail over between them in under a second (1: one edge only)",
	Value: agent.DefaultEdges,
}

// parseEdges reads --edges.
func parseEdges(c *cli.Context) (int, error) {
	n := c.Int(edgesFlag.Name)
	if n < 1 {
		return 0, model.Errorf(model.KindInvalid, "--edges %d: must be at least 1", n)
	}
	return n, nil
}

// parseProtocol reads --protocol.
func parseProtocol(c *cli.Context) (agent.Protocol, error) {
	p, err := agent.ParseProtocol(c.String("protocol"))
	if err != nil {
		return "", model.Errorf(model.KindInvalid, "--protocol: %v", err)
	}
	return p, nil
}
