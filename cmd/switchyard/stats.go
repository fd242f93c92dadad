package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "show the edge's data plane counters: forwarded, ICMP errors, drops by reason, WireGuard events",
		Flags: []cli.Flag{outputFlag},
		Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
			raw, err := api.Stats(ctx)
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("decode stats: %w", err)
			}
			return render(c, v, func(w *tabwriter.Writer) {
				flat := map[string]any{}
				flatten("", v, flat)
				keys := make([]string, 0, len(flat))
				for k := range flat {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					row(w, k, flat[k])
				}
			})
		}),
	}
}

// flatten turns nested JSON objects into dotted keys.
func flatten(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = v
		return
	}
	for k, sub := range m {
		if prefix != "" {
			k = prefix + "." + k
		}
		flatten(k, sub, out)
	}
}
