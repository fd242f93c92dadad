package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

func splitTunnelCommand() *cli.Command {
	show := func(c *cli.Context, st model.SplitTunnel) error {
		return render(c, st, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "Mode: %s\n", st.Mode)
			row(w, "ENTRY", "DESCRIPTION")
			for _, e := range st.Entries {
				row(w, e.Key(), e.Description)
			}
		})
	}
	return &cli.Command{
		Name:  "split-tunnel",
		Usage: "manage which destinations clients send through the tunnel",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "show the mode and the list",
				Flags: []cli.Flag{outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					st, err := api.SplitTunnel(ctx)
					if err != nil {
						return err
					}
					return show(c, st)
				}),
			},
			{
				Name:      "mode",
				Usage:     "switch mode (exclude: all but the list; include: only the list); resets the list to that mode's defaults",
				ArgsUsage: "exclude|include",
				Flags:     []cli.Flag{outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					mode, err := oneArg(c, "exclude|include")
					if err != nil {
						return err
					}
					st, err := api.SetSplitMode(ctx, mode)
					if err != nil {
						return err
					}
					return show(c, st)
				}),
			},
			{
				Name: "add",
				Usage: "add a CIDR, or with --domain a domain, to the list (a domain's addresses are learned " +
					"from the DNS answers the clients' stub relays: corp.example is it and its subdomains, *.corp.example its subdomains only)",
				ArgsUsage: "[CIDR] [DESCRIPTION]",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "domain", Usage: "a domain (corp.example) or its subdomains (*.corp.example) instead of a CIDR"}},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					var e model.SplitEntry
					if d := c.String("domain"); d != "" {
						if err := checkArgs(c, 0, 1, "--domain DOMAIN [DESCRIPTION]"); err != nil {
							return err
						}
						var err error
						if e.Domain, err = model.ParseSplitDomain(d); err != nil {
							return err
						}
						e.Description = c.Args().Get(0)
					} else {
						if err := checkArgs(c, 1, 2, "CIDR [DESCRIPTION]"); err != nil {
							return err
						}
						p, err := model.ParsePrefix(c.Args().Get(0))
						if err != nil {
							return err
						}
						e = model.SplitEntry{Address: p, Description: c.Args().Get(1)}
					}
					st, err := api.AddSplitEntry(ctx, e)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Added %s to the %s list (%d entries)\n", e.Key(), st.Mode, len(st.Entries))
					return nil
				}),
			},
			{
				Name:      "remove",
				Usage:     "remove a CIDR or a domain from the list",
				ArgsUsage: "CIDR|DOMAIN",
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					s, err := oneArg(c, "CIDR|DOMAIN")
					if err != nil {
						return err
					}
					st, err := api.RemoveSplitEntry(ctx, s)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Removed %s from the %s list (%d entries)\n", s, st.Mode, len(st.Entries))
					return nil
				}),
			},
		},
	}
}
