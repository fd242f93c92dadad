package main

import (
	"math"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/model"
)

// checkPositional decorates the app and every command of its tree so that it refuses
// positional arguments its ArgsUsage does not name, before its action runs:
// urfave/cli stops parsing flags at the first positional argument, so a stray
// word would otherwise make every flag after it silently ignored (`edge bogus
// --data-dir X` ran an edge on the default directory). A command without
// ArgsUsage takes none; a parent command refuses an unknown subcommand.
func checkPositional(app *cli.App) {
	if app.Action == nil {
		app.Action = unknownCommand
	}
	checkCommands(app.Commands)
}

func checkCommands(cmds []*cli.Command) {
	for _, cmd := range cmds {
		checkCommands(cmd.Subcommands)
		if cmd.Action == nil {
			if len(cmd.Subcommands) == 0 {
				continue
			}
			cmd.Action = unknownCommand
			continue
		}
		min, max := argCounts(cmd.ArgsUsage)
		usage, action := cmd.ArgsUsage, cmd.Action
		cmd.Action = func(c *cli.Context) error {
			if err := checkArgs(c, min, max, usage); err != nil {
				return err
			}
			return action(c)
		}
	}
}

// unknownCommand is the action of a command that only has subcommands (and
// of the app): it shows the help, or refuses a word that names none of them.
func unknownCommand(c *cli.Context) error {
	if c.NArg() > 0 {
		name := commandPath(c)
		if name == "" {
			name = c.App.Name
		}
		return model.Errorf(model.KindInvalid, "%s: unknown command %q; run %s --help", name, c.Args().First(), name)
	}
	if c.Command == nil || c.Command.Name == "" {
		return cli.ShowAppHelp(c)
	}
	return cli.ShowSubcommandHelp(c)
}

// argCounts reads how many positional arguments an ArgsUsage allows: each
// word is one, a word in brackets is optional, and a word ending in "..."
// may repeat ("NAME|ID...", "CIDR TUNNEL [COMMENT]").
func argCounts(usage string) (min, max int) {
	for _, w := range strings.Fields(usage) {
		optional := strings.HasPrefix(w, "[")
		if strings.HasSuffix(strings.TrimSuffix(w, "]"), "...") {
			max = math.MaxInt
		} else if max != math.MaxInt {
			max++
		}
		if !optional {
			min++
		}
	}
	return min, max
}

// checkArgs requires between min and max positional arguments. Flags after an
// argument are not parsed (as in cloudflared), so it says so when it sees one.
func checkArgs(c *cli.Context, min, max int, usage string) error {
	name := commandPath(c)
	if n := c.NArg(); n > 0 && max == 0 {
		return model.Errorf(model.KindInvalid, "%s takes no arguments (got %q; flags after an argument are not parsed)", name, c.Args().Slice())
	}
	for _, a := range c.Args().Tail() {
		if strings.HasPrefix(a, "-") {
			return model.Errorf(model.KindInvalid, "%s: flag %s comes after an argument; put flags before the arguments: %s [flags] %s", name, a, name, usage)
		}
	}
	switch n := c.NArg(); {
	case n < min || n > max:
		return model.Errorf(model.KindInvalid, "%s needs %s (got %d arguments)", name, usage, n)
	}
	return nil
}

// oneArg returns the only positional argument; checkPositional has checked
// that there is exactly one.
func oneArg(c *cli.Context, name string) (string, error) {
	if err := checkArgs(c, 1, 1, name); err != nil {
		return "", err
	}
	return c.Args().First(), nil
}

// commandPath is the full command, e.g. "switchyard tunnel route ip add".
func commandPath(c *cli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" {
			names = append([]string{l.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}
