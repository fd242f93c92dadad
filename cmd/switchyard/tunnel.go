package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/google/uuid"
	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

func tunnelCommand() *cli.Command {
	return &cli.Command{
		Name:  "tunnel",
		Usage: "manage tunnels, virtual networks and routes",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a tunnel and print the token its connectors enroll with",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					name, err := oneArg(c, "NAME")
					if err != nil {
						return err
					}
					created, err := api.CreateTunnel(ctx, name)
					if err != nil {
						return err
					}
					return render(c, created, func(w *tabwriter.Writer) {
						fmt.Fprintf(w, "Created tunnel %s with id %s\n", created.Tunnel.Name, created.Tunnel.ID)
						fmt.Fprintf(w, "Token (run a connector with: switchyard connector run --token TOKEN):\n%s\n", created.Token)
					})
				}),
			},
			{
				Name:  "list",
				Usage: "list tunnels",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "id", Usage: "only the tunnel with this `ID`"},
					&cli.StringFlag{Name: "name", Usage: "only the tunnel with this `NAME`"},
					&cli.BoolFlag{Name: "show-deleted", Usage: "include deleted tunnels"},
					outputFlag,
				},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					f := model.TunnelFilter{Name: c.String("name"), ShowDeleted: c.Bool("show-deleted")}
					if s := c.String("id"); s != "" {
						id, err := uuid.Parse(s)
						if err != nil {
							return model.Errorf(model.KindInvalid, "--id %q is not a UUID", s)
						}
						f.ID = &id
					}
					tunnels, err := api.ListTunnels(ctx, f)
					if err != nil {
						return err
					}
					return render(c, tunnels, func(w *tabwriter.Writer) {
						row(w, "ID", "NAME", "CREATED", "CONNECTIONS", "DELETED")
						for _, t := range tunnels {
							row(w, t.ID, t.Name, t.CreatedAt, len(t.Connections), t.DeletedAt)
							for _, r := range t.Connections {
								row(w, "", "  replica "+replicaName(r), r.OriginIP, replicaState(r), "")
							}
						}
					})
				}),
			},
			{
				Name:      "delete",
				Usage:     "delete tunnels; refused while routes or policies use them unless --force, which deletes those routes (policy conditions on them then match nothing)",
				ArgsUsage: "NAME|ID...",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "also delete the tunnel's routes"}},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					if err := checkArgs(c, 1, 1<<20, "NAME|ID..."); err != nil {
						return err
					}
					for _, ref := range c.Args().Slice() {
						n, err := api.DeleteTunnel(ctx, ref, c.Bool("force"))
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "Deleted tunnel %s", ref)
						if n > 0 {
							fmt.Fprintf(c.App.Writer, " and its %d route(s)", n)
						}
						fmt.Fprintln(c.App.Writer)
					}
					return nil
				}),
			},
			{
				Name:      "token",
				Usage:     "print the token of a tunnel",
				ArgsUsage: "NAME|ID",
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ref, err := oneArg(c, "NAME|ID")
					if err != nil {
						return err
					}
					t, err := api.TunnelToken(ctx, ref)
					if err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, t.Token)
					return nil
				}),
			},
			{
				Name:      "failover",
				Usage:     "make a replica the tunnel's active one (by connector id or hostname; default: the best standby)",
				ArgsUsage: "TUNNEL [REPLICA]",
				Flags:     []cli.Flag{outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					if err := checkArgs(c, 1, 2, "TUNNEL [REPLICA]"); err != nil {
						return err
					}
					r, err := api.Failover(ctx, c.Args().Get(0), c.Args().Get(1))
					if err != nil {
						return err
					}
					return render(c, r, func(w *tabwriter.Writer) {
						fmt.Fprintf(w, "Replica %s is now active for tunnel %s\n", replicaName(r), c.Args().Get(0))
					})
				}),
			},
			vnetCommand(),
			routeCommand(),
		},
	}
}

// replicaName names a replica by its hostname and connector id.
func replicaName(r model.Connection) string {
	if r.Hostname == "" {
		return r.ID.String()
	}
	return printable(r.Hostname) + " (" + r.ID.String() + ")"
}

// replicaState is a replica's state, priority and preference for tables.
func replicaState(r model.Connection) string {
	s := fmt.Sprintf("%s prio=%d", r.State, r.Priority)
	if r.Preferred {
		s += " preferred"
	}
	if r.Edge != "" {
		s += " edge=" + printable(r.Edge)
	}
	for _, e := range r.Standby {
		s += " standby-edge=" + printable(e)
	}
	if r.PathMTU != nil { // agent→edge/edge→agent, or probing / not probed
		s += " path-mtu=" + strings.ReplaceAll(r.PathMTU.String(), " ", "-")
	}
	return s
}
