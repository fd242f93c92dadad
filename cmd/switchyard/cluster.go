package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/cluster"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/edge"
)

// clusterConfig reads the edge's cluster flags into cfg.
func clusterConfig(c *cli.Context, cfg *edge.Config) error {
	cfg.EdgeName = c.String("edge-name")
	st := c.String("store")
	if st == "" {
		for _, f := range []string{"etcd-ca", "etcd-cert", "etcd-key", "cluster-key"} {
			if c.IsSet(f) {
				return model.Errorf(model.KindInvalid, "--%s needs --store etcd://HOST:PORT", f)
			}
		}
		return nil
	}
	rest, ok := strings.CutPrefix(st, "etcd://")
	if !ok || rest == "" {
		return model.Errorf(model.KindInvalid, "--store %q: want etcd://HOST:PORT[,HOST:PORT...]", st)
	}
	e := &edge.EtcdConfig{Prefix: c.String("etcd-prefix"), CA: c.String("etcd-ca"), Cert: c.String("etcd-cert"), Key: c.String("etcd-key")}
	for _, ep := range strings.Split(rest, ",") {
		if ep = strings.TrimSpace(ep); ep == "" {
			return model.Errorf(model.KindInvalid, "--store %q: an empty endpoint", st)
		}
		e.Endpoints = append(e.Endpoints, ep)
	}
	if (e.Cert == "") != (e.Key == "") {
		return model.Errorf(model.KindInvalid, "--etcd-cert and --etcd-key go together")
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") {
		return model.Errorf(model.KindInvalid, "--etcd-prefix %q: must start and end with /", e.Prefix)
	}
	path := c.String("cluster-key")
	if path == "" {
		return model.Errorf(model.KindInvalid, "--store etcd:// needs --cluster-key FILE (create one with: switchyard edge cluster-key create FILE)")
	}
	key, err := cluster.LoadKey(path)
	if err != nil {
		return model.Errorf(model.KindInvalid, "--cluster-key: %v", err)
	}
	e.ClusterKey = key
	cfg.Etcd = e
	return nil
}

func clusterKeyCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster-key",
		Usage: "the key that seals a cluster's secrets in etcd",
		Subcommands: []*cli.Command{{
			Name:      "create",
			Usage:     "write a new random cluster key to FILE (mode 0600); give the same file to every edge",
			ArgsUsage: "FILE",
			Action: func(c *cli.Context) error {
				if err := checkArgs(c, 1, 1, "FILE"); err != nil {
					return err
				}
				path := c.Args().First()
				k, err := cluster.NewKey()
				if err != nil {
					return err
				}
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if errors.Is(err, os.ErrExist) {
					return model.Errorf(model.KindConflict, "cluster key %s exists: not overwritten (the cluster's secrets are sealed with it)", path)
				}
				if err != nil {
					return fmt.Errorf("create cluster key: %w", err)
				}
				if _, err := f.WriteString(k.Encode()); err != nil {
					f.Close()
					os.Remove(path)
					return fmt.Errorf("write cluster key %s: %w", path, err)
				}
				if err := f.Sync(); err != nil {
					f.Close()
					os.Remove(path)
					return fmt.Errorf("write cluster key %s: %w", path, err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("write cluster key %s: %w", path, err)
				}
				fmt.Fprintf(c.App.Writer, "Wrote a cluster key to %s: give every edge of the cluster the same file (--cluster-key).\n", path)
				return nil
			},
		}},
	}
}

func edgeListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the edges of the cluster",
		Flags: []cli.Flag{outputFlag},
		Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
			if err := checkArgs(c, 0, 0, "no arguments"); err != nil {
				return err
			}
			edges, err := api.Edges(ctx)
			if err != nil {
				return err
			}
			return render(c, edges, func(w *tabwriter.Writer) {
				row(w, "NAME", "API", "WIREGUARD", "VERSION", "LAST SEEN", "STATE", "SESSIONS")
				for _, e := range edges {
					state := "down"
					if e.Healthy {
						state = "healthy"
					}
					seen := "-"
					if !e.LastSeen.IsZero() {
						seen = time.Since(e.LastSeen).Round(time.Second).String() + " ago"
					}
					row(w, printable(e.Name), e.API, e.WireGuard, printable(e.Version), seen, state, e.Sessions)
				}
			})
		}),
	}
}
