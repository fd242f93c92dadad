package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
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

// flatten turns nested JSON objects into dotted keys. The elements of a list
// are keyed by what names them (an "edge" or "name" field: trunks.edge-2.packets_in),
// else by their index.
func flatten(prefix string, v any, out map[string]any) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			flatten(join(k), sub, out)
		}
	case []any:
		for i, el := range v {
			k := strconv.Itoa(i)
			if m, ok := el.(map[string]any); ok {
				for _, f := range []string{"edge", "name"} {
					if n, ok := m[f].(string); ok && n != "" {
						k, m = n, maps.Clone(m)
						delete(m, f)
						el = m
						break
					}
				}
			}
			flatten(join(k), el, out)
		}
	default:
		out[prefix] = v
	}
}
