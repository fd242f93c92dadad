package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

func dnsCommand() *cli.Command {
	return &cli.Command{
		Name:  "dns",
		Usage: "private resolvers per domain for clients, and the zone of the overlay's names",
		Subcommands: []*cli.Command{
			{
				Name:  "resolver",
				Usage: "send clients' queries for a domain and its subdomains to servers in a site",
				Subcommands: []*cli.Command{
					{
						Name:      "add",
						Usage:     "add a resolver for DOMAIN in a virtual network; a SERVER is IP (port 53) or IP:PORT ([IPv6]:PORT)",
						ArgsUsage: "DOMAIN SERVER[:PORT]...",
						Flags:     []cli.Flag{vnetFlag},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							args := c.Args().Slice() // checkPositional saw DOMAIN and a SERVER at least
							res, err := api.AddDNSResolver(ctx, model.NewDNSResolver{VNet: c.String("vnet"), Domain: args[0], Servers: args[1:]})
							if err != nil {
								return err
							}
							fmt.Fprintf(c.App.Writer, "Added resolver %s for %s in virtual network %s: %s\n", res.ID, res.Domain, res.VNetName, servers(res.Servers))
							return nil
						}),
					},
					{
						Name:  "list",
						Usage: "list the resolvers (of every virtual network, or of --vnet)",
						Flags: []cli.Flag{&cli.StringFlag{Name: "vnet", Aliases: []string{"vn"}, Usage: "only virtual network `NAME|ID`"}, outputFlag},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							rs, err := api.ListDNSResolvers(ctx, c.String("vnet"))
							if err != nil {
								return err
							}
							return render(c, rs, func(w *tabwriter.Writer) {
								row(w, "ID", "VNET", "DOMAIN", "SERVERS")
								for _, r := range rs {
									row(w, r.ID, r.VNetName, r.Domain, servers(r.Servers))
								}
							})
						}),
					},
					{
						Name:      "remove",
						Usage:     "remove a resolver by its id, or by its domain in a virtual network",
						ArgsUsage: "DOMAIN|ID",
						Flags:     []cli.Flag{vnetFlag},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							ref, err := oneArg(c, "DOMAIN|ID")
							if err != nil {
								return err
							}
							res, err := api.RemoveDNSResolver(ctx, ref, c.String("vnet"))
							if err != nil {
								return err
							}
							fmt.Fprintf(c.App.Writer, "Removed resolver %s for %s\n", res.ID, res.Domain)
							return nil
						}),
					},
				},
			},
			{
				Name:  "zone",
				Usage: "show the zone in which the edge answers devices' names (NAME.ZONE)",
				Flags: []cli.Flag{outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					z, err := api.DNSZone(ctx)
					if err != nil {
						return err
					}
					return render(c, model.DNSZone{Zone: z}, func(w *tabwriter.Writer) { fmt.Fprintln(w, z) })
				}),
				Subcommands: []*cli.Command{{
					Name:      "set",
					Usage:     "set the zone of the overlay's names",
					ArgsUsage: "NAME",
					Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
						name, err := oneArg(c, "NAME")
						if err != nil {
							return err
						}
						z, err := api.SetDNSZone(ctx, name)
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "The edge answers devices' names in %s\n", z)
						return nil
					}),
				}},
			},
		},
	}
}

// servers joins a rule's servers with commas.
func servers(aps []netip.AddrPort) string {
	s := make([]string, len(aps))
	for i, ap := range aps {
		s[i] = ap.String()
	}
	return strings.Join(s, ",")
}
