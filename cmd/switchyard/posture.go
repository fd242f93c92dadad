package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// postureIntervalFlag is client up's --posture-interval.
var postureIntervalFlag = &cli.DurationFlag{Name: "posture-interval", Value: agent.DefaultPostureInterval,
	Usage: "collect the device's posture every `DURATION` and report it when it changed (and every 5m at least); at least 1s"}

// parsePostureInterval is --posture-interval, checked.
func parsePostureInterval(c *cli.Context) (time.Duration, error) {
	d := c.Duration(postureIntervalFlag.Name)
	if d < time.Second {
		return 0, model.Errorf(model.KindInvalid, "--posture-interval %v is below 1s", d)
	}
	return d, nil
}

func postureCommand() *cli.Command {
	return &cli.Command{
		Name:  "posture",
		Usage: "manage what device posture checks against",
		Subcommands: []*cli.Command{
			{
				Name:  "network",
				Usage: "manage the posture networks: a client on one (an address outside the tunnel in its prefix) reports its name as device.posture.network",
				Subcommands: []*cli.Command{
					{
						Name:  "list",
						Usage: "list the posture networks, in the order clients check them",
						Flags: []cli.Flag{outputFlag},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							nets, err := api.ListPostureNetworks(ctx)
							if err != nil {
								return err
							}
							return render(c, nets, func(w *tabwriter.Writer) {
								row(w, "NAME", "PREFIX")
								for _, n := range nets {
									row(w, n.Name, n.Prefix)
								}
							})
						}),
					},
					{
						Name:      "add",
						Usage:     "add a posture network (after the others: the first that holds an address of the client wins)",
						ArgsUsage: "NAME CIDR",
						Flags:     []cli.Flag{outputFlag},
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							if err := checkArgs(c, 2, 2, "NAME CIDR"); err != nil {
								return err
							}
							n, err := api.AddPostureNetwork(ctx, model.PostureNetwork{Name: c.Args().Get(0), Prefix: c.Args().Get(1)})
							if err != nil {
								return err
							}
							return render(c, n, func(w *tabwriter.Writer) {
								fmt.Fprintf(w, "Added posture network %s (%s)\n", n.Name, n.Prefix)
							})
						}),
					},
					{
						Name:      "remove",
						Usage:     "remove a posture network",
						ArgsUsage: "NAME",
						Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
							name, err := oneArg(c, "NAME")
							if err != nil {
								return err
							}
							n, err := api.RemovePostureNetwork(ctx, name)
							if err != nil {
								return err
							}
							fmt.Fprintf(c.App.Writer, "Removed posture network %s (%s)\n", n.Name, n.Prefix)
							return nil
						}),
					},
				},
			},
		},
	}
}

// clientPostureCommand is `client posture`: the running client collects
// its posture, reports it at once, and the command prints it.
func clientPostureCommand() *cli.Command {
	return &cli.Command{
		Name:  "posture",
		Usage: "show this device's posture (through the running client, which reports it to the edge at once)",
		Flags: []cli.Flag{clientStateDir, outputFlag},
		Action: func(c *cli.Context) error {
			if err := checkArgs(c, 0, 0, ""); err != nil {
				return err
			}
			p, err := localapi.NewClient("client", c.String("state-dir")).ReportPosture(c.Context)
			if err != nil {
				return err
			}
			return render(c, p, func(w *tabwriter.Writer) {
				for _, f := range [][2]any{
					{"OS", p.OS}, {"OS VERSION", p.OSVersion}, {"KERNEL", p.Kernel}, {"CLIENT VERSION", p.ClientVersion},
					{"DISK ENCRYPTED", p.DiskEncrypted}, {"FIREWALL", p.Firewall}, {"SERIAL", p.Serial}, {"NETWORK", p.Network},
					{"COLLECTED AT", p.CollectedAt.Format(time.RFC3339)},
				} {
					row(w, f[0], f[1])
				}
			})
		},
	}
}
