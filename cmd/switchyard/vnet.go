package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/google/uuid"
	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

func vnetCommand() *cli.Command {
	return &cli.Command{
		Name:  "vnet",
		Usage: "manage virtual networks",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add a virtual network",
				ArgsUsage: "NAME [COMMENT]",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "default", Aliases: []string{"d"}, Usage: "make it the default virtual network"}},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					if err := checkArgs(c, 1, 2, "NAME [COMMENT]"); err != nil {
						return err
					}
					v, err := api.CreateVNet(ctx, model.NewVNet{Name: c.Args().Get(0), Comment: c.Args().Get(1), IsDefault: c.Bool("default")})
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Successfully added virtual network %s with ID: %s", v.Name, v.ID)
					if v.IsDefault {
						fmt.Fprint(c.App.Writer, " (as the new default for this account)")
					}
					fmt.Fprintln(c.App.Writer)
					return nil
				}),
			},
			{
				Name:  "list",
				Usage: "list virtual networks",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "id", Usage: "only the virtual network with this `ID`"},
					&cli.StringFlag{Name: "name", Usage: "only the virtual network with this `NAME`"},
					&cli.BoolFlag{Name: "is-default", Usage: "only the default virtual network"},
					&cli.BoolFlag{Name: "show-deleted", Usage: "include deleted virtual networks"},
					outputFlag,
				},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					f := model.VNetFilter{Name: c.String("name"), ShowDeleted: c.Bool("show-deleted")}
					if s := c.String("id"); s != "" {
						id, err := uuid.Parse(s)
						if err != nil {
							return model.Errorf(model.KindInvalid, "--id %q is not a UUID", s)
						}
						f.ID = &id
					}
					if c.IsSet("is-default") {
						b := c.Bool("is-default")
						f.IsDefault = &b
					}
					vnets, err := api.ListVNets(ctx, f)
					if err != nil {
						return err
					}
					return render(c, vnets, func(w *tabwriter.Writer) {
						row(w, "ID", "NAME", "IS DEFAULT", "COMMENT", "CREATED", "DELETED")
						for _, v := range vnets {
							row(w, v.ID, v.Name, v.IsDefault, v.Comment, v.CreatedAt, v.DeletedAt)
						}
					})
				}),
			},
			{
				Name:      "update",
				Usage:     "change a virtual network's name, comment or default flag",
				ArgsUsage: "NAME|ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Aliases: []string{"n"}, Usage: "new `NAME`"},
					&cli.StringFlag{Name: "comment", Aliases: []string{"c"}, Usage: "new `COMMENT`"},
					&cli.BoolFlag{Name: "default", Usage: "make it the default virtual network"},
				},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ref, err := oneArg(c, "NAME|ID")
					if err != nil {
						return err
					}
					var p model.VNetPatch
					if c.IsSet("name") {
						n := c.String("name")
						p.Name = &n
					}
					if c.IsSet("comment") {
						s := c.String("comment")
						p.Comment = &s
					}
					if c.IsSet("default") {
						b := c.Bool("default")
						p.IsDefault = &b
					}
					if p == (model.VNetPatch{}) {
						return model.Errorf(model.KindInvalid, "vnet update needs at least one of --name, --comment, --default")
					}
					v, err := api.UpdateVNet(ctx, ref, p)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Successfully updated virtual network %s (%s)\n", v.Name, v.ID)
					return nil
				}),
			},
			{
				Name:      "delete",
				Usage:     "delete a virtual network; refused while routes or policies use it unless --force, which deletes the routes (policy conditions on it then match nothing)",
				ArgsUsage: "NAME|ID",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "also delete the routes in it"}},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ref, err := oneArg(c, "NAME|ID")
					if err != nil {
						return err
					}
					n, err := api.DeleteVNet(ctx, ref, c.Bool("force"))
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Successfully deleted virtual network %s", ref)
					if n > 0 {
						fmt.Fprintf(c.App.Writer, " and %d route(s) in it", n)
					}
					fmt.Fprintln(c.App.Writer)
					return nil
				}),
			},
		},
	}
}
