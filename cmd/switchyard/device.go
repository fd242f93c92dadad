package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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
						// A cluster's list also names the edges of each device's sessions.
						cluster := slices.ContainsFunc(devices, func(d model.Device) bool { return d.Edge != "" })
						head := []any{"ID", "NAME", "DEVICE TYPE", "OS VERSION", "VERSION", "IP", "USER", "GROUPS", "SESSION EXPIRES", "ENROLL TOKEN", "LAST SEEN", "LAST HANDSHAKE", "PATH MTU", "REVOKED"}
						if cluster {
							head = append(head, "EDGE", "STANDBY")
						}
						row(w, head...)
						for _, d := range devices {
							cols := []any{d.ID, d.Name, d.DeviceType, d.OSVersion, d.Version, d.IP, d.User, strings.Join(d.Groups, ","), sessionCol(d.SessionExpiresAt), tokenID(d.EnrollToken), d.LastSeen, d.LastHandshake, d.PathMTU.String(), revokedCol(d)}
							if cluster {
								cols = append(cols, cmp.Or(d.Edge, "-"), cmp.Or(strings.Join(d.StandbyEdges, ","), "-"))
							}
							row(w, cols...)
						}
					})
				}),
			},
			wgConfigCommand(),
			devicePostureCommand(),
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
				Name:      "unrevoke",
				Usage:     "lift a device's revocation: its key may enroll again (as a new device, with an enrollment token)",
				ArgsUsage: "NAME|ID",
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ref, err := oneArg(c, "NAME|ID")
					if err != nil {
						return err
					}
					d, err := api.UnrevokeDevice(ctx, ref)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Lifted the revocation of device %s (%s): its key may enroll again\n", d.Name, d.ID)
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
							&cli.DurationFlag{Name: "expires", Aliases: []string{"expires-in"}, Usage: "token lifetime `DURATION`, e.g. 1h; 0 for a token that never expires", Value: model.DefaultEnrollTTL},
							&cli.IntFlag{Name: "uses", Usage: "enroll at most `N` devices with it (0: no limit)"},
							&cli.StringFlag{Name: "user", Usage: "`EMAIL` of the user every device enrolled with it belongs to (policies match it as user_email; default: no user)"},
							&cli.StringFlag{Name: "comment", Usage: "`COMMENT` to tell tokens apart"},
							outputFlag,
						},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							req := model.NewEnrollToken{Comment: c.String("comment"), TTL: c.Duration("expires"), User: c.String("user"), MaxUses: c.Int("uses")}
							if req.TTL == 0 {
								req.NoExpiry = true
							}
							t, err := api.CreateEnrollToken(ctx, req)
							if err != nil {
								return err
							}
							return render(c, t, func(w *tabwriter.Writer) {
								fmt.Fprintf(w, "Created enrollment token %s", t.ID)
								if t.User != "" {
									fmt.Fprintf(w, " for user %s", t.User)
								}
								if t.ExpiresAt != nil {
									fmt.Fprintf(w, " (expires %s)", t.ExpiresAt.Format(time.RFC3339))
								}
								if t.MaxUses > 0 {
									fmt.Fprintf(w, " (%d uses)", t.MaxUses)
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
								row(w, "ID", "USER", "COMMENT", "CREATED", "EXPIRES", "USES")
								for _, t := range tokens {
									uses := fmt.Sprint(t.Uses)
									if t.MaxUses > 0 {
										uses = fmt.Sprintf("%d/%d", t.Uses, t.MaxUses)
									}
									row(w, t.ID, t.User, t.Comment, t.CreatedAt, t.ExpiresAt, uses)
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

// tokenID shows an enrollment token id, "-" for devices enrolled before
// the token was recorded.
func tokenID(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}

// revokedCol shows when a device was revoked, and whether an admin lifted it.
func revokedCol(d model.Device) string {
	switch {
	case d.RevokedAt == nil:
		return ""
	case d.UnrevokedAt != nil:
		return d.RevokedAt.Format(time.RFC3339) + " (lifted)"
	}
	return d.RevokedAt.Format(time.RFC3339)
}
