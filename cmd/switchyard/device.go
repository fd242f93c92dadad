package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

func deviceCommand() *cli.Command {
	return &cli.Command{
		Name:  "device",
		Usage: "manage user devices and their enrollment tokens",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list enrolled devices",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "show-revoked", Usage: "include revoked devices"}, outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					devices, err := api.ListDevices(ctx, c.Bool("show-revoked"))
					if err != nil {
						return err
					}
					return render(c, devices, func(w *tabwriter.Writer) {
						row(w, "ID", "NAME", "DEVICE TYPE", "OS VERSION", "VERSION", "IP", "USER", "LAST SEEN", "REVOKED")
						for _, d := range devices {
							row(w, d.ID, d.Name, d.DeviceType, d.OSVersion, d.Version, d.IP, d.User, d.LastSeen, d.RevokedAt)
						}
					})
				}),
			},
			{
				Name:      "revoke",
				Usage:     "revoke a device: the edge cuts it off at once",
				ArgsUsage: "NAME|ID",
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ref, err := oneArg(c, "NAME|ID")
					if err != nil {
						return err
					}
					d, err := api.RevokeDevice(ctx, ref)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Revoked device %s (%s, %s)\n", d.Name, d.ID, d.IP)
					return nil
				}),
			},
			{
				Name:  "enroll-token",
				Usage: "manage the tokens devices enroll with",
				Subcommands: []*cli.Command{
					{
						Name:  "create",
						Usage: "create an enrollment token and print it",
						Flags: []cli.Flag{
							&cli.DurationFlag{Name: "expires-in", Usage: "token lifetime, e.g. 24h (default: no expiry)"},
							&cli.StringFlag{Name: "comment", Usage: "`COMMENT` to tell tokens apart"},
							outputFlag,
						},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							t, err := api.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: c.String("comment"), TTL: c.Duration("expires-in")})
							if err != nil {
								return err
							}
							return render(c, t, func(w *tabwriter.Writer) {
								fmt.Fprintf(w, "Created enrollment token %s", t.ID)
								if t.ExpiresAt != nil {
									fmt.Fprintf(w, " (expires %s)", t.ExpiresAt.Format(time.RFC3339))
								}
								fmt.Fprintf(w, "\nEnroll a device with: switchyard client up --token TOKEN\n%s\n", t.Token)
							})
						}),
					},
					{
						Name:  "list",
						Usage: "list enrollment tokens",
						Flags: []cli.Flag{outputFlag},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							tokens, err := api.ListEnrollTokens(ctx)
							if err != nil {
								return err
							}
							return render(c, tokens, func(w *tabwriter.Writer) {
								row(w, "ID", "COMMENT", "CREATED", "EXPIRES")
								for _, t := range tokens {
									row(w, t.ID, t.Comment, t.CreatedAt, t.ExpiresAt)
								}
							})
						}),
					},
					{
						Name:      "delete",
						Usage:     "delete an enrollment token (enrolled devices stay)",
						ArgsUsage: "ID",
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							s, err := oneArg(c, "ID")
							if err != nil {
								return err
							}
							id, err := uuid.Parse(s)
							if err != nil {
								return model.Errorf(model.KindInvalid, "%q is not an enrollment token id", s)
							}
							if err := api.DeleteEnrollToken(ctx, id); err != nil {
								return err
							}
							fmt.Fprintf(c.App.Writer, "Deleted enrollment token %s\n", id)
							return nil
						}),
					},
				},
			},
		},
	}
}
