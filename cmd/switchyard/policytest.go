package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// policyTestCommand is `policy test`: which policy the edge applies to a flow.
func policyTestCommand() *cli.Command {
	return &cli.Command{
		Name:  "test",
		Usage: "show which policy the edge's own engine applies to a flow, and what it does",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "src", Usage: "the source `IP`", Required: true},
			&cli.StringFlag{Name: "dst", Usage: "the destination `IP`", Required: true},
			&cli.StringFlag{Name: "proto", Usage: "`PROTOCOL`: tcp, udp or icmp", Value: "tcp"},
			&cli.UintFlag{Name: "port", Usage: "the destination `PORT` (tcp, udp)"},
			&cli.StringFlag{Name: "vnet", Usage: "the sender's virtual network `VNET` (default: the default)"},
			&cli.StringFlag{Name: "device", Usage: "the sending `DEVICE` (name or id)"},
			&cli.StringFlag{Name: "user", Usage: "the flow's user `EMAIL` (default: the device's)"},
			&cli.StringSliceFlag{Name: "group", Usage: "one of the user's `GROUP`s, repeatable (default: the device's)"},
			&cli.StringSliceFlag{Name: "posture", Usage: "a posture `FIELD=VALUE` (os, os_version, kernel, client_version, disk_encrypted, firewall, serial, network), repeatable; any given replace the device's report"},
			&cli.StringFlag{Name: "tunnel", Usage: "the sending site's `TUNNEL` (name or id)"},
			outputFlag,
		},
		Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
			if err := checkArgs(c, 0, 0, ""); err != nil {
				return err
			}
			src, err := model.ParseAddr(c.String("src"))
			if err != nil {
				return err
			}
			dst, err := model.ParseAddr(c.String("dst"))
			if err != nil {
				return err
			}
			if c.Uint("port") > 65535 {
				return model.Errorf(model.KindInvalid, "policy test: port %d is out of range", c.Uint("port"))
			}
			posture, err := model.ParsePosture(c.StringSlice("posture"))
			if err != nil {
				return err
			}
			v, err := api.TestFlow(ctx, model.FlowTest{VNet: c.String("vnet"), Device: c.String("device"), User: c.String("user"),
				Groups: c.StringSlice("group"), Posture: posture,
				Tunnel: c.String("tunnel"), Src: src, Dst: dst, Protocol: c.String("proto"), Port: uint16(c.Uint("port"))})
			if err != nil {
				return err
			}
			return render(c, v, func(w *tabwriter.Writer) {
				act := v.Action
				if v.Silent {
					act += " (silent)"
				}
				row(w, "Action:", act)
				if v.Policy != nil {
					row(w, "Policy:", fmt.Sprintf("%s (precedence %d, %s)", v.Policy.Name, v.Policy.Precedence, v.Policy.ID))
				} else {
					row(w, "Policy:", "none matched: the default action")
				}
				row(w, "VNet:", v.VNetName)
				row(w, "Rules:", fmt.Sprintf("%d at revision %d", v.Rules, v.Rev))
			})
		}),
	}
}
