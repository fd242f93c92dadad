package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/control/model"
)

var outputFlag = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `FORMAT`: table, json or yaml", Value: "table"}

// render writes v as JSON or YAML per --output, or calls table for the default.
func render(c *cli.Context, v any, table func(w *tabwriter.Writer)) error {
	w := c.App.Writer
	switch f := c.String("output"); f {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		return writeYAML(w, v)
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		table(tw)
		return tw.Flush()
	default:
		return fmt.Errorf("unknown output format %q: use table, json or yaml", f)
	}
}

// writeYAML renders v through its JSON form, so YAML keys match the API's.
func writeYAML(w io.Writer, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(buf, &generic); err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return err
	}
	return enc.Close()
}

func row(w io.Writer, cols ...any) {
	s := make([]string, len(cols))
	for i, c := range cols {
		switch c := c.(type) {
		case time.Time:
			s[i] = c.Format(time.RFC3339)
		case *time.Time:
			s[i] = "-"
			if c != nil {
				s[i] = c.Format(time.RFC3339)
			}
		default:
			s[i] = printable(fmt.Sprint(c))
		}
		if s[i] == "" {
			s[i] = "-"
		}
	}
	fmt.Fprintln(w, strings.Join(s, "\t"))
}

// printable is model.Printable: what agents, devices and the edge report
// goes through it before it reaches a table or a line.
func printable(s string) string { return model.Printable(s) }
