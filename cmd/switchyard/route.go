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

var vnetFlag = &cli.StringFlag{Name: "vnet", Aliases: []string{"vn"}, Usage: "virtual network `NAME|ID` (default: the default virtual network)"}

func routeCommand() *cli.Command {
	return &cli.Command{
		Name:  "route",
		Usage: "route private networks to tunnels",
		Subcommands: []*cli.Command{{
			Name:  "ip",
			Usage: "manage IP routes",
			Subcommands: []*cli.Command{
				routeAddCommand(),
				routeShowCommand(),
				routeGetCommand(),
				routeDeleteCommand(),
				routeOverlapsCommand(),
			},
		}},
	}
}

func routeAddCommand() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "route a network (CIDR) to a tunnel",
		ArgsUsage: "CIDR TUNNEL [COMMENT]",
		Flags: []cli.Flag{vnetFlag,
			&cli.BoolFlag{Name: "if-not-exists", Usage: "succeed with the existing route when the virtual network routes CIDR to TUNNEL already (to another tunnel is still an error)"},
		},
		Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
			if err := checkArgs(c, 2, 3, "CIDR TUNNEL [COMMENT]"); err != nil {
				return err
			}
			p, err := model.ParsePrefix(c.Args().Get(0))
			if err != nil {
				return err
			}
			rt, err := api.AddRoute(ctx, model.NewRoute{Network: p, Tunnel: c.Args().Get(1), VNet: c.String("vnet"), Comment: c.Args().Get(2),
				IfNotExists: c.Bool("if-not-exists")})
			if err != nil {
				return err
			}
			if rt.Existing {
				fmt.Fprintf(c.App.Writer, "Route for %s over tunnel %s in virtual network %s already exists (route id %s)\n",
					rt.Network, rt.TunnelName, rt.VNetName, rt.ID)
				return nil
			}
			fmt.Fprintf(c.App.Writer, "Successfully added route for %s over tunnel %s in virtual network %s (route id %s)\n",
				rt.Network, rt.TunnelName, rt.VNetName, rt.ID)
			for _, w := range rt.Warnings {
				fmt.Fprintf(c.App.ErrWriter, "Warning: %s\n", w)
			}
			return nil
		}),
	}
}

func routeShowCommand() *cli.Command {
	return &cli.Command{
		Name:    "show",
		Aliases: []string{"list"},
		Usage:   "list routes",
		Flags: []cli.Flag{
			vnetFlag,
			&cli.StringFlag{Name: "tunnel", Usage: "only routes to this tunnel `NAME|ID`"},
			&cli.StringFlag{Name: "network-subset-of", Usage: "only routes whose network lies within `CIDR`"},
			&cli.StringFlag{Name: "network-superset-of", Usage: "only routes whose network contains `CIDR`"},
			&cli.StringFlag{Name: "comment", Usage: "only routes with exactly this `COMMENT`"},
			&cli.BoolFlag{Name: "show-deleted", Usage: "include deleted routes"},
			outputFlag,
		},
		Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
			f := model.RouteFilter{VNet: c.String("vnet"), Tunnel: c.String("tunnel"), ShowDeleted: c.Bool("show-deleted")}
			for flag, dst := range map[string]**netip.Prefix{"network-subset-of": &f.SubsetOf, "network-superset-of": &f.SupersetOf} {
				if s := c.String(flag); s != "" {
					p, err := model.ParsePrefix(s)
					if err != nil {
						return fmt.Errorf("--%s: %w", flag, err)
					}
					*dst = &p
				}
			}
			if c.IsSet("comment") {
				s := c.String("comment")
				f.Comment = &s
			}
			routes, err := api.ListRoutes(ctx, f)
			if err != nil {
				return err
			}
			return render(c, routes, func(w *tabwriter.Writer) {
				if len(routes) == 0 {
					fmt.Fprintln(w, "No routes match.")
					return
				}
				routeTable(w, routes)
			})
		}),
	}
}

func routeTable(w *tabwriter.Writer, routes []model.Route) {
	row(w, "ID", "NETWORK", "VIRTUAL NET", "TUNNEL", "COMMENT", "CREATED", "DELETED")
	for _, r := range routes {
		row(w, r.ID, r.Network, r.VNetName, r.TunnelName, r.Comment, r.CreatedAt, r.DeletedAt)
	}
}

func routeGetCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "show the route that an IP takes: the longest prefix match in a virtual network",
		ArgsUsage: "IP",
		Flags:     []cli.Flag{vnetFlag, outputFlag},
		Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
			s, err := oneArg(c, "IP")
			if err != nil {
				return err
			}
			ip, err := model.ParseAddr(s)
			if err != nil {
				return err
			}
			rt, err := api.GetRoute(ctx, c.String("vnet"), ip)
			if err != nil {
				return err
			}
			return render(c, rt, func(w *tabwriter.Writer) {
				routeTable(w, []model.Route{rt})
				if rt.Edge != "" {
					fmt.Fprintf(w, "\nCarried by edge %s (the tunnel's active replica)\n", printable(rt.Edge))
				}
			})
		}),
	}
}

func routeDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Aliases:   []string{"rm"},
		Usage:     "delete a route by id, or by CIDR in a virtual network",
		ArgsUsage: "ID|CIDR",
		Flags:     []cli.Flag{vnetFlag},
		Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
			ref, err := oneArg(c, "ID|CIDR")
			if err != nil {
				return err
			}
			if strings.Contains(ref, "/") {
				if _, err := model.ParsePrefix(ref); err != nil {
					return err
				}
			}
			rt, err := api.DeleteRoute(ctx, c.String("vnet"), ref)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "Successfully deleted route %s for %s in virtual network %s\n", rt.ID, rt.Network, rt.VNetName)
			return nil
		}),
	}
}

func routeOverlapsCommand() *cli.Command {
	return &cli.Command{
		Name:  "overlaps",
		Usage: "list the networks routed in more than one virtual network, and where",
		Flags: []cli.Flag{outputFlag},
		Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
			groups, err := api.Overlaps(ctx)
			if err != nil {
				return err
			}
			return render(c, groups, func(w *tabwriter.Writer) {
				if len(groups) == 0 {
					fmt.Fprintln(w, "No network is routed in more than one virtual network.")
					return
				}
				row(w, "OVERLAP", "NETWORK", "VIRTUAL NET", "TUNNEL", "ROUTE ID")
				for _, g := range groups {
					for _, r := range g.Routes {
						row(w, g.Network, r.Network, r.VNetName, r.TunnelName, r.ID)
					}
				}
			})
		}),
	}
}
