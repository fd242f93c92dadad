package main

import (
	"fmt"
	stdlog "log"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/edge"
)

func edgeCommand() *cli.Command {
	return &cli.Command{
		Name:  "edge",
		Usage: "run the edge: control API, store, WireGuard endpoint and router",
		Flags: withEnv(
			&cli.StringFlag{Name: "data-dir", Usage: "`DIR` for the store, CA, keys and admin config", Value: "/var/lib/switchyard"},
			&cli.StringFlag{Name: "api-listen", Usage: "`ADDR` the control API listens on", Value: "127.0.0.1:7443"},
			&cli.StringFlag{Name: "api-public-url", Usage: "`URL` agents use to reach the API (default: https:// and the listening address)"},
			&cli.StringFlag{Name: "wg-listen", Usage: "WireGuard UDP `HOST:PORT`; an empty host (or 0.0.0.0, ::) listens on every address, an IP address on that one alone (without UDP GSO/GRO)", Value: ":51820"},
			&cli.StringFlag{Name: "masque-listen", Usage: "MASQUE (CONNECT-IP over HTTP/3) UDP `ADDR`; agents use PUBLIC-ADDR's host and this port; empty: off", Value: ":443"},
			&cli.StringFlag{Name: "public-addr", Usage: "`HOST:PORT` of the WireGuard listener as agents reach it; carried in tokens"},
			&cli.IntFlag{Name: "mtu", Usage: "tunnel `MTU` that agents use", Value: edge.DefaultMTU},
			&cli.StringFlag{Name: "overlay-range", Usage: "`CIDR` that device overlay addresses come from", Value: model.DefaultOverlayRange.String()},
			&cli.IntFlag{Name: "max-flows", Usage: "bound `N` of the flow table (about 430 bytes a flow); new flows evict old ones past it", Value: edge.DefaultMaxFlows},
			&cli.DurationFlag{Name: "deleted-retention", Usage: "how long deleted virtual networks, tunnels and routes stay listed (--show-deleted) before they are purged", Value: edge.DefaultDeletedRetention},
			&cli.IntFlag{Name: "api-max-conns", Usage: "cap `N` on the API's connections (each agent holds one); more wait, before their TLS handshake", Value: edge.DefaultAPIMaxConns},
			&cli.IntFlag{Name: "masque-max-sessions", Usage: "bound `N` on the MASQUE sessions of one connector replica or device; more get 429", Value: edge.DefaultMASQUEMaxSessions},
			&cli.StringFlag{Name: "store", Usage: "where the configuration lives: empty for the data dir's bbolt file, or etcd://`HOST:PORT`[,HOST:PORT...] for a cluster of edges"},
			&cli.StringFlag{Name: "etcd-prefix", Usage: "key `PREFIX` of this cluster in etcd", Value: "/switchyard/"},
			&cli.StringFlag{Name: "etcd-ca", Usage: "`FILE`: CA certificate that signed etcd's server certificates (TLS to etcd)"},
			&cli.StringFlag{Name: "etcd-cert", Usage: "`FILE`: client certificate for etcd (with --etcd-key)"},
			&cli.StringFlag{Name: "etcd-key", Usage: "`FILE`: client key for etcd"},
			&cli.StringFlag{Name: "cluster-key", Usage: "`FILE` with the key that seals the cluster's secrets in etcd (required with --store etcd://; see edge cluster-key create)"},
			&cli.StringFlag{Name: "edge-name", Usage: "`NAME` of this edge in the cluster, unique (default: the hostname)"},
			&cli.StringFlag{Name: "oidc-issuer", Usage: "issuer `URL` of the OpenID Connect provider users and admins sign in with (discovered at start); empty: sign-in is off"},
			&cli.StringFlag{Name: "oidc-client-id", Usage: "the edge's client `ID` at the OpenID Connect provider"},
			&cli.StringFlag{Name: "oidc-client-secret-file", Usage: "`FILE` with the edge's client secret at the OpenID Connect provider"},
			&cli.StringFlag{Name: "oidc-groups-claim", Usage: "ID token `CLAIM` with the user's groups", Value: "groups"},
			&cli.StringFlag{Name: "oidc-admin-group", Usage: "`GROUP` whose members may sign in as admins (API and console); empty: none"},
			metricsFlag,
			debugFlag,
			debugAddrFlag,
		),
		Subcommands: []*cli.Command{edgeListCommand(), clusterKeyCommand()},
		Action: func(c *cli.Context) error {
			log := daemonLog(c, "edge")
			overlay, err := model.ParsePrefix(c.String("overlay-range"))
			if err != nil {
				return fmt.Errorf("--overlay-range: %w", err)
			}
			_, stopDebug, err := serveDebug(c.String("debug-addr"), log)
			if err != nil {
				return err
			}
			defer stopDebug()
			cfg := edge.Config{
				DataDir:          c.String("data-dir"),
				APIListen:        c.String("api-listen"),
				APIPublicURL:     c.String("api-public-url"),
				PublicAddr:       c.String("public-addr"),
				WGListen:         c.String("wg-listen"),
				MASQUEListen:     c.String("masque-listen"),
				MTU:              c.Int("mtu"),
				OverlayRange:     overlay,
				MaxFlows:         c.Int("max-flows"),
				DeletedRetention: c.Duration("deleted-retention"),
				MetricsListen:    c.String("metrics-listen"),
				Log:              log,
				Announce:         c.App.Writer,
			}
			cfg.Version = version
			if err := clusterConfig(c, &cfg); err != nil {
				return err
			}
			cfg.APILimits.MaxConns = c.Int("api-max-conns")
			cfg.MASQUEMaxSessions = c.Int("masque-max-sessions")
			if cfg.OIDC, err = oidcConfig(c); err != nil {
				return err
			}
			return edge.Run(c.Context, cfg)
		},
	}
}

var debugFlag = &cli.BoolFlag{Name: "debug", Usage: "log at debug level"}

// metricsFlag turns on a daemon's Prometheus endpoint.
var metricsFlag = &cli.StringFlag{Name: "metrics-listen", Usage: "`ADDR` of the Prometheus /metrics endpoint (plain HTTP; default off)"}

// daemonLog is a daemon's logger: text to stderr, debug level with --debug;
// the daemon's parts add their own component attribute.
func daemonLog(c *cli.Context, daemon string) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})).With("daemon", daemon)
	// connect-ip-go logs through the standard logger, some lines per
	// packet (a datagram it refuses): keep them at debug level.
	stdlog.SetFlags(0)
	stdlog.SetOutput(slog.NewLogLogger(log.Handler(), slog.LevelDebug).Writer())
	return log
}

// oidcConfig reads the --oidc-* flags; nil without --oidc-issuer.
func oidcConfig(c *cli.Context) (*edge.OIDCConfig, error) {
	if c.String("oidc-issuer") == "" {
		for _, f := range []string{"oidc-client-id", "oidc-client-secret-file", "oidc-admin-group"} {
			if c.IsSet(f) {
				return nil, fmt.Errorf("--%s needs --oidc-issuer", f)
			}
		}
		return nil, nil
	}
	if c.String("oidc-client-id") == "" || c.String("oidc-client-secret-file") == "" {
		return nil, fmt.Errorf("--oidc-issuer needs --oidc-client-id and --oidc-client-secret-file")
	}
	secret, err := os.ReadFile(c.String("oidc-client-secret-file"))
	if err != nil {
		return nil, fmt.Errorf("--oidc-client-secret-file: %w", err)
	}
	if len(strings.TrimSpace(string(secret))) == 0 {
		return nil, fmt.Errorf("--oidc-client-secret-file %s is empty", c.String("oidc-client-secret-file"))
	}
	return &edge.OIDCConfig{Issuer: c.String("oidc-issuer"), ClientID: c.String("oidc-client-id"),
		ClientSecret: strings.TrimSpace(string(secret)), GroupsClaim: c.String("oidc-groups-claim"),
		AdminGroup: c.String("oidc-admin-group")}, nil
}
