package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/pki"
)

func enrollmentCommand() *cli.Command {
	return &cli.Command{
		Name:  "enrollment",
		Usage: "who may enroll devices by signing in with the identity provider (client up --login)",
		Subcommands: []*cli.Command{
			{
				Name:  "rule",
				Usage: "enrollment rules: users admitted by email domain and group, and how long their sign-in lasts",
				Subcommands: []*cli.Command{
					{
						Name:      "add",
						Usage:     "add a rule admitting users whose email is in a --email-domain and who are in a --group (either may be left out, not both)",
						ArgsUsage: "NAME",
						Flags: []cli.Flag{
							&cli.StringSliceFlag{Name: "email-domain", Usage: "admit emails at `DOMAIN` (repeatable)"},
							&cli.StringSliceFlag{Name: "group", Usage: "admit members of the identity provider's `GROUP` (repeatable)"},
							&cli.StringFlag{Name: "session-duration", Usage: "how long a sign-in lasts, 1m to 90d (`DURATION`: 8h, 30m, 7d)", Value: "24h"},
							&cli.IntFlag{Name: "precedence", Usage: "rules are tried by precedence, lowest first (`N`; default: after every rule)"},
						},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							name, err := oneArg(c, "NAME")
							if err != nil {
								return err
							}
							d, err := parseSessionDuration(c.String("session-duration"))
							if err != nil {
								return err
							}
							req := model.NewEnrollmentRule{Name: name, EmailDomains: c.StringSlice("email-domain"), Groups: c.StringSlice("group"), SessionDuration: d}
							if c.IsSet("precedence") {
								p := c.Int("precedence")
								req.Precedence = &p
							}
							rule, err := api.AddEnrollmentRule(ctx, req)
							if err != nil {
								return err
							}
							fmt.Fprintf(c.App.Writer, "Added enrollment rule %s (%s), precedence %d: sessions of %v\n", rule.Name, rule.ID, rule.Precedence, rule.SessionDuration)
							return nil
						}),
					},
					{
						Name:  "list",
						Usage: "list the enrollment rules in the order they are tried",
						Flags: []cli.Flag{outputFlag},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							rules, err := api.EnrollmentRules(ctx)
							if err != nil {
								return err
							}
							return render(c, rules, func(w *tabwriter.Writer) {
								row(w, "ID", "NAME", "PRECEDENCE", "EMAIL DOMAINS", "GROUPS", "SESSION DURATION")
								for _, r := range rules {
									row(w, r.ID, r.Name, r.Precedence, listCol(r.EmailDomains), listCol(r.Groups), r.SessionDuration)
								}
							})
						}),
					},
					{
						Name:      "remove",
						Usage:     "remove a rule; devices it admitted keep their sessions until these end",
						ArgsUsage: "NAME|ID",
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							ref, err := oneArg(c, "NAME|ID")
							if err != nil {
								return err
							}
							rule, err := api.RemoveEnrollmentRule(ctx, ref)
							if err != nil {
								return err
							}
							fmt.Fprintf(c.App.Writer, "Removed enrollment rule %s (%s)\n", rule.Name, rule.ID)
							return nil
						}),
					},
				},
			},
			{
				Name:  "login-command",
				Usage: "print the command a device signs in and enrolls with (the edge's API address and CA pin, from the admin config)",
				Action: func(c *cli.Context) error {
					api, pin, err := edgeAPIAndPin(c)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "switchyard client up --login --edge %s --edge-ca-pin %s\n", api, pin)
					return nil
				},
			},
		},
	}
}

func userCommand() *cli.Command {
	return &cli.Command{
		Name:  "user",
		Usage: "users who enrolled devices by signing in, and their sessions",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the users of the enrolled devices",
				Flags: []cli.Flag{outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					users, err := api.Users(ctx)
					if err != nil {
						return err
					}
					return render(c, users, func(w *tabwriter.Writer) {
						row(w, "EMAIL", "SUBJECT", "GROUPS", "DEVICES", "SESSION EXPIRES")
						for _, u := range users {
							row(w, u.Email, u.Subject, listCol(u.Groups), len(u.Devices), sessionCol(u.SessionExpiresAt))
						}
					})
				}),
			},
			{
				Name:      "logout",
				Usage:     "end the sessions of the user's devices now: their traffic stops until the user signs in again",
				ArgsUsage: "EMAIL",
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					email, err := oneArg(c, "EMAIL")
					if err != nil {
						return err
					}
					devices, err := api.LogoutUser(ctx, email)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Ended the sessions of %d device(s) of %s\n", len(devices), email)
					return nil
				}),
			},
		},
	}
}

// parseSessionDuration parses a Go duration or a number of days ("7d").
func parseSessionDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return 0, model.Errorf(model.KindInvalid, "session duration %q: give a duration such as 8h, 30m or 7d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, model.Errorf(model.KindInvalid, "session duration %q: give a duration such as 8h, 30m or 7d", s)
	}
	return d, nil
}

func listCol(ss []string) string {
	if len(ss) == 0 {
		return "-"
	}
	return strings.Join(ss, ",")
}

// sessionCol shows a session's end, "-" for none, and says when it ended.
func sessionCol(at *time.Time) string {
	switch {
	case at == nil:
		return "-"
	case !time.Now().Before(*at):
		return "ended " + at.UTC().Format(time.RFC3339)
	}
	return at.UTC().Format(time.RFC3339)
}

// edgeAPIAndPin returns the edge's API address and the pin of its CA, from
// --api and --ca or the admin config.
func edgeAPIAndPin(c *cli.Context) (string, string, error) {
	apiURL, caPEM := c.String("api"), []byte(nil)
	if f := c.String("ca"); f != "" {
		var err error
		if caPEM, err = os.ReadFile(f); err != nil {
			return "", "", fmt.Errorf("read CA: %w", err)
		}
	}
	if apiURL == "" || caPEM == nil {
		path := c.String("config")
		if path == "" {
			path = client.DefaultConfigPath
		}
		cfg, err := client.LoadConfig(path)
		if err != nil {
			return "", "", err
		}
		apiURL = firstNonEmpty(apiURL, cfg.API)
		if caPEM == nil {
			caPEM = []byte(cfg.CA)
		}
	}
	cert, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return "", "", fmt.Errorf("the edge's CA: %w", err)
	}
	return apiURL, pki.Pin(cert), nil
}
