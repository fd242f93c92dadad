package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// flowFilters are the flows tail filters, each sent as the query parameter of its name.
var flowFilters = []string{"addr", "port", "proto", "action", "policy", "user", "vnet", "tunnel", "event"}

func flowsCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new records until interrupted"},
		&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 100, Usage: "print the last `N` matching records first (0: all)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "output `FORMAT`: text or json (one object a line)"},
	}
	for _, f := range flowFilters {
		flags = append(flags, &cli.StringFlag{Name: f, Usage: "only records whose " + f + " is `VALUE`"})
	}
	return &cli.Command{
		Name:  "flows",
		Usage: "read the edge's flow log",
		Subcommands: []*cli.Command{{
			Name:  "tail",
			Usage: "print flow starts and ends (addr and port match either end; user and tunnel either session)",
			Flags: flags,
			Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
				if err := checkArgs(c, 0, 0, ""); err != nil {
					return err
				}
				q := url.Values{"n": {strconv.Itoa(c.Int("lines"))}, "follow": {strconv.FormatBool(c.Bool("follow"))}}
				for _, f := range flowFilters {
					if v := c.String(f); v != "" {
						q.Set(f, v)
					}
				}
				enc := json.NewEncoder(c.App.Writer)
				return api.Flows(ctx, q, func(r model.FlowRecord) error {
					if c.String("output") == "json" {
						return enc.Encode(r)
					}
					_, err := fmt.Fprintln(c.App.Writer, flowLine(r))
					return err
				})
			}),
		}},
	}
}

// flowLine renders a flow record on one line.
func flowLine(r model.FlowRecord) string {
	pol := "default"
	if r.PolicyID != nil {
		pol = r.PolicyID.String()
	}
	s := fmt.Sprintf("%s %-5s %s %s %s -> %s policy=%s vnet=%s from=%s",
		r.Time.Format("2006-01-02T15:04:05.000Z07:00"), r.Event, r.Protocol, r.Action, r.Src, r.Dst, pol, r.VNetName, who(r.Source))
	if len(r.Edges) > 0 {
		s += " edges=" + strings.Join(r.Edges, ">")
		if r.FarCopy {
			s += "(far copy)"
		}
	}
	if r.Event == model.FlowEnd {
		s += fmt.Sprintf(" out=%d/%dB in=%d/%dB %dms (%s)", r.PacketsOut, r.BytesOut, r.PacketsIn, r.BytesIn, r.DurationMS, r.EndReason)
	}
	return printable(s)
}

func who(s model.FlowSession) string {
	if s.Kind == "client" {
		return fmt.Sprintf("device:%s(%s,%s)", s.DeviceName, s.User, s.DeviceID)
	}
	return fmt.Sprintf("tunnel:%s(%s)", s.TunnelName, s.TunnelID)
}
