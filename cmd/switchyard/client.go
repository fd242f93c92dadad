package main

import (
	"cmp"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/agent"
	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

var clientStateDir = &cli.StringFlag{Name: "state-dir", Usage: "`DIR` for the key, the device credential and the host state", Value: "/var/lib/switchyard-client"}

func clientCommand() *cli.Command {
	return &cli.Command{
		Name:  "client",
		Usage: "run this device as a client of the edge",
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "enroll (first time, with --token or --login) and send matching traffic through the edge",
				Flags: withEnv(
					&cli.StringFlag{Name: "token", Usage: "enrollment `TOKEN` from switchyard device enroll-token create", EnvVars: []string{"SWITCHYARD_ENROLL_TOKEN"}},
					&cli.BoolFlag{Name: "login", Usage: "enroll by signing in with the edge's identity provider (and sign in again when the session ended), instead of with --token"},
					&cli.StringFlag{Name: "login-flow", Usage: "with --login: `FLOW` device (a URL and a code, for any device) or browser (a URL to open on this host)", Value: "device"},
					&cli.StringFlag{Name: "edge", Usage: "with --login, before the first enrollment: the edge's API `URL` (switchyard enrollment login-command prints it)"},
					&cli.StringFlag{Name: "edge-ca-pin", Usage: "with --login, before the first enrollment: the `PIN` of the edge's CA"},
					clientStateDir,
					&cli.StringFlag{Name: "tun-name", Usage: "TUN interface `NAME`", Value: agent.DefaultClientTunName},
					&cli.StringFlag{Name: "name", Usage: "device `NAME` (default: the hostname)"},
					&cli.StringFlag{Name: "user", Usage: "`USER` the device expects to belong to; enrollment is refused unless the token names that user (device enroll-token create --user)"},
					protocolFlag,
					wireGuardRetryFlag,
					edgesFlag,
					metricsFlag,
					debugFlag,
					&cli.BoolFlag{Name: "userspace", Usage: "run without a TUN, routes or privileges: reach the sites through --socks5 or --http-proxy, and let them reach --expose'd ports"},
					&cli.StringFlag{Name: "socks5", Usage: "with --userspace: serve a SOCKS5 proxy (CONNECT, UDP ASSOCIATE) on `ADDR`, e.g. 127.0.0.1:1080"},
					&cli.StringFlag{Name: "http-proxy", Usage: "with --userspace: serve an HTTP CONNECT proxy on `ADDR`, e.g. 127.0.0.1:8080"},
					&cli.StringSliceFlag{Name: "expose", Usage: "with --userspace: accept TCP connections to the overlay address on PORT and forward them to LOCALHOST:LOCALPORT (default 127.0.0.1:PORT); repeatable"},
					&cli.BoolFlag{Name: "no-dns", Usage: "leave DNS alone: no stub resolver, no change to systemd-resolved or resolv.conf, the host's resolver for every name (and the split tunnel's domain entries unused)"},
					&cli.StringFlag{Name: "resolv-conf", Usage: "rewrite (and on exit restore) this resolver configuration `FILE` instead of using systemd-resolved or /etc/resolv.conf (a container's own file)"},
					postureIntervalFlag,
				),
				Action: func(c *cli.Context) error {
					proto, err := parseProtocol(c)
					if err != nil {
						return err
					}
					us, err := parseUserspace(c)
					if err != nil {
						return err
					}
					edges, err := parseEdges(c)
					if err != nil {
						return err
					}
					if flow := c.String("login-flow"); flow != client.LoginFlowDevice && flow != client.LoginFlowBrowser {
						return model.Errorf(model.KindInvalid, "--login-flow %q: give device or browser", flow)
					}
					for _, f := range []string{"login-flow", "edge", "edge-ca-pin"} {
						if c.IsSet(f) && !c.Bool("login") {
							return model.Errorf(model.KindInvalid, "--%s needs --login", f)
						}
					}
					postureInterval, err := parsePostureInterval(c)
					if err != nil {
						return err
					}
					if c.String("resolv-conf") != "" && (c.Bool("no-dns") || us != nil) {
						return model.Errorf(model.KindInvalid, "--resolv-conf is for the kernel mode's DNS: not with --no-dns or --userspace")
					}
					return agent.RunClient(c.Context, agent.ClientConfig{
						Protocol:       proto,
						Edges:          edges,
						WireGuardRetry: c.Duration(wireGuardRetryFlag.Name),
						Token:          c.String("token"),
						Login:          c.Bool("login"),
						LoginFlow:      c.String("login-flow"),
						LoginOut:       c.App.ErrWriter,
						EdgeAPI:        c.String("edge"),
						EdgeCAPin:      c.String("edge-ca-pin"),
						StateDir:       c.String("state-dir"),
						TunName:        c.String("tun-name"),
						Name:           c.String("name"),
						User:           c.String("user"),
						Version:        version,
						MetricsListen:  c.String("metrics-listen"),
						Userspace:      us,
						NoDNS:          c.Bool("no-dns"),
						DNS:            agent.DNSHost{ResolvConf: c.String("resolv-conf")},
						Log:            daemonLog(c, "client"),

						PostureInterval: postureInterval,
					})
				},
			},
			clientPostureCommand(),
			{
				Name:  "status",
				Usage: "print the running client's view of its tunnel and session; exit status 1 unless the edge answers it (or when the session ended)",
				Flags: []cli.Flag{clientStateDir, outputFlag},
				Action: func(c *cli.Context) error {
					st, err := localapi.NewClient("client", c.String("state-dir")).Status(c.Context)
					if errors.Is(err, localapi.ErrNotRunning) {
						if ended, ok := agent.ReadSessionEnded(c.String("state-dir")); ok {
							if err := render(c, ended, func(w *tabwriter.Writer) { fmt.Fprintln(w, ended.Message) }); err != nil {
								return err
							}
							return cli.Exit("", 1)
						}
					}
					if err != nil {
						return err
					}
					if err := render(c, st, func(w *tabwriter.Writer) {
						row(w, "PID", "HEALTHY", "RTT", "PATH MTU", "EDGE", "SESSION EXPIRES", "UPDATED")
						row(w, st.PID, st.Healthy, st.RTT, st.PathMTU.String(), cmp.Or(st.Edge, "-"), sessionCol(st.SessionExpiresAt), st.UpdatedAt)
					}); err != nil {
						return err
					}
					if !st.Healthy {
						return cli.Exit("", 1)
					}
					return nil
				},
			},
			{
				Name:      "vnet",
				Usage:     "list the virtual networks, or switch this device into one (through the running client)",
				ArgsUsage: "[NAME|ID]",
				Flags:     []cli.Flag{clientStateDir, outputFlag},
				Action: func(c *cli.Context) error {
					if err := checkArgs(c, 0, 1, "[NAME|ID]"); err != nil {
						return err
					}
					api := localapi.NewClient("client", c.String("state-dir"))
					if c.NArg() == 1 {
						v, err := api.SelectVNet(c.Context, c.Args().First())
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "Switched to virtual network %s (%s)\n", v.Name, v.ID)
						return nil
					}
					vnets, err := api.VNets(c.Context)
					if err != nil {
						return err
					}
					return render(c, vnets, func(w *tabwriter.Writer) {
						row(w, "ID", "NAME", "IS DEFAULT", "COMMENT")
						for _, v := range vnets {
							row(w, v.ID, v.Name, v.IsDefault, v.Comment)
						}
					})
				},
			},
		},
	}
}

// parseUserspace returns the userspace mode's configuration, nil without
// --userspace (whose flags then are an error).
func parseUserspace(c *cli.Context) (*agent.UserspaceConfig, error) {
	if !c.Bool("userspace") {
		for _, f := range []string{"socks5", "http-proxy", "expose"} {
			if c.IsSet(f) {
				return nil, fmt.Errorf("--%s needs --userspace", f)
			}
		}
		return nil, nil
	}
	us := &agent.UserspaceConfig{SOCKS5: c.String("socks5"), HTTPProxy: c.String("http-proxy")}
	for _, s := range c.StringSlice("expose") {
		e, err := agent.ParseExpose(s)
		if err != nil {
			return nil, err
		}
		us.Expose = append(us.Expose, e)
	}
	if us.SOCKS5 == "" && us.HTTPProxy == "" && len(us.Expose) == 0 {
		return nil, fmt.Errorf("--userspace needs --socks5, --http-proxy or --expose")
	}
	return us, nil
}
