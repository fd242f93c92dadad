package main

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/urfave/cli/v2"
	"github.com/vishvananda/netns"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/agent/doctor"
	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/routing/host"
)

// doctorCommand diagnoses the host a connector or client runs on.
func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check this gateway host or client: forwarding, rp_filter, conflicting routes, the edge, the token, the WireGuard port, the running agent",
		Description: "Prints each check with ok, warn or fail and the command that fixes it; exits 1 when a check fails.\n" +
			"Prefixes routed into the tunnel are the overlay range, those the running agent installed and every --prefix.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "role", Usage: "`ROLE` of this host: connector or client", Value: "connector"},
			&cli.StringFlag{Name: "state-dir", Usage: "the agent's state `DIR` (default: /var/lib/switchyard-ROLE)"},
			&cli.StringFlag{Name: "tun-name", Usage: "the agent's TUN interface `NAME` (default: the role's)"},
			&cli.StringSliceFlag{Name: "prefix", Usage: "`CIDR` routed into the tunnel (repeatable)"},
			&cli.StringFlag{Name: "token", Usage: "tunnel `TOKEN` or device credential naming the edge (default for a client: its saved credential; none skips the edge checks)", EnvVars: []string{"SWITCHYARD_TUNNEL_TOKEN"}},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `FORMAT`: table or json", Value: "table"},
		},
		Action: func(c *cli.Context) error {
			role := c.String("role")
			cfg := doctor.Config{Role: role, TunName: c.String("tun-name"), Token: c.String("token")}
			switch role {
			case "connector":
				cfg.TunName = cmp.Or(cfg.TunName, agent.DefaultTunName)
			case "client":
				cfg.TunName = cmp.Or(cfg.TunName, agent.DefaultClientTunName)
			default:
				return fmt.Errorf("doctor: unknown role %q: use connector or client", role)
			}
			for _, s := range c.StringSlice("prefix") {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return fmt.Errorf("doctor: parse --prefix: %w", err)
				}
				cfg.Prefixes = append(cfg.Prefixes, p)
			}
			stateDir := cmp.Or(c.String("state-dir"), "/var/lib/switchyard-"+role)
			if cfg.Token == "" && role == "client" {
				cfg.Token, _ = agent.DeviceCredential(stateDir) // none: the edge checks are skipped
			}
			key, err := agent.ReadKey(stateDir)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("doctor: %w", err)
			}
			cfg.Key = key
			ops, err := host.NewNetlinkOps(netns.None())
			if err != nil {
				return fmt.Errorf("doctor: %w", err)
			}
			defer ops.Close()
			cfg.Host = ops
			cfg.Legacy = doctor.RunLegacy
			cfg.Daemon = localapi.NewClient(role, stateDir)
			rep := doctor.Run(c.Context, cfg)
			switch f := c.String("output"); f {
			case "json":
				err = rep.WriteJSON(c.App.Writer)
			case "table", "":
				err = rep.WriteText(c.App.Writer)
			default:
				return fmt.Errorf("doctor: unknown output format %q: use table or json", f)
			}
			if err != nil {
				return err
			}
			if n := rep.Failed(); n > 0 {
				return fmt.Errorf("doctor: %d checks failed", n)
			}
			return nil
		},
	}
}
