package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// envPrefix starts the environment variable of every daemon flag.
const envPrefix = "SWITCHYARD_"

// envName is the variable a daemon flag also reads: "api-listen" is
// SWITCHYARD_API_LISTEN.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// withEnv returns copies of a daemon's flags that also read envName(name)
// from the environment (a systemd EnvironmentFile), unless a flag names its
// own variable already (the tokens). A flag on the command line wins over
// its variable. Copies, so that the flags shared with other commands (and
// other apps built concurrently in tests) stay as they are.
func withEnv(flags ...cli.Flag) []cli.Flag {
	out := make([]cli.Flag, len(flags))
	for i, f := range flags {
		env := []string{envName(f.Names()[0])}
		switch f := f.(type) {
		case *cli.StringFlag:
			c := *f
			c.EnvVars = cmpEnv(c.EnvVars, env)
			out[i] = &c
		case *cli.BoolFlag:
			c := *f
			c.EnvVars = cmpEnv(c.EnvVars, env)
			out[i] = &c
		case *cli.IntFlag:
			c := *f
			c.EnvVars = cmpEnv(c.EnvVars, env)
			out[i] = &c
		case *cli.UintFlag:
			c := *f
			c.EnvVars = cmpEnv(c.EnvVars, env)
			out[i] = &c
		case *cli.DurationFlag:
			c := *f
			c.EnvVars = cmpEnv(c.EnvVars, env)
			out[i] = &c
		case *cli.StringSliceFlag:
			c := *f
			c.EnvVars = cmpEnv(c.EnvVars, env)
			out[i] = &c
		default: // envFileTest names any type this misses
			out[i] = f
		}
	}
	return out
}

// cmpEnv is have, or env when have is empty.
func cmpEnv(have, env []string) []string {
	if len(have) > 0 {
		return have
	}
	return env
}

// daemonRole is a daemon whose unit reads an environment file.
type daemonRole struct {
	name   string   // edge, connector, client: the file is /etc/switchyard/NAME.env
	path   []string // the command: edge, connector run, client up
	header string
}

var daemonRoles = []daemonRole{
	{name: "edge", path: []string{"edge"}, header: `# The environment of switchyard-edge.service: every flag of "switchyard edge".
# At least set SWITCHYARD_PUBLIC_ADDR (the WireGuard address agents reach) and
# SWITCHYARD_API_LISTEN (the edge listens on loopback until you do).
# The edge runs as the user switchyard and may write only in /var/lib/switchyard:
# files it reads (--cluster-key, --etcd-key, --oidc-client-secret-file) must be
# readable by that user (chgrp switchyard FILE; chmod 0640 FILE), and another
# --data-dir needs ReadWritePaths= (systemctl edit switchyard-edge).`},
	{name: "connector", path: []string{"connector", "run"}, header: `# The environment of switchyard-connector.service: every flag of
# "switchyard connector run". SWITCHYARD_TUNNEL_TOKEN (switchyard tunnel token
# NAME) is required; keep this file mode 0600.
# For one connector per virtual network, copy this file to
# /etc/switchyard/connector-NAME.env and start switchyard-connector@NAME: its
# state dir is /var/lib/switchyard-connector-NAME and its TUN sy-NAME (NAME at
# most 12 characters, or set SWITCHYARD_TUN_NAME here).`},
	{name: "client", path: []string{"client", "up"}, header: `# The environment of switchyard-client.service: every flag of
# "switchyard client up". Enroll once with SWITCHYARD_ENROLL_TOKEN (switchyard
# device enroll-token create); later starts use the credential stored in
# /var/lib/switchyard-client. Keep this file mode 0600.`},
}

// envFileCommand prints a daemon's environment file, generated from its
// flags: the package installs them as /etc/switchyard/ROLE.env.
func envFileCommand() *cli.Command {
	cmd := &cli.Command{
		Name:   "envfile",
		Usage:  "print the environment file of a daemon's systemd unit (edge, connector or client): every flag, commented",
		Hidden: true,
	}
	for _, r := range daemonRoles {
		cmd.Subcommands = append(cmd.Subcommands, &cli.Command{
			Name:  r.name,
			Usage: "print /etc/switchyard/" + r.name + ".env",
			Action: func(c *cli.Context) error {
				return writeEnvFile(c.App.Writer, c.App, r)
			},
		})
	}
	return cmd
}

// findCommand walks path down app's commands.
func findCommand(app *cli.App, path []string) *cli.Command {
	cmds := app.Commands
	var found *cli.Command
	for _, name := range path {
		found = nil
		for _, c := range cmds {
			if c.Name == name {
				found = c
				break
			}
		}
		if found == nil {
			return nil
		}
		cmds = found.Subcommands
	}
	return found
}

// writeEnvFile writes r's environment file: per flag its name, usage and
// default, then the variable commented out with the default as its value.
func writeEnvFile(w io.Writer, app *cli.App, r daemonRole) error {
	cmd := findCommand(app, r.path)
	if cmd == nil {
		return fmt.Errorf("envfile %s: no command %q", r.name, strings.Join(r.path, " "))
	}
	var b strings.Builder
	b.WriteString(r.header + "\n")
	b.WriteString("#\n# Uncomment a line to set it; a flag in ExecStart would win over it.\n")
	b.WriteString("# Generated from the CLI by: switchyard envfile " + r.name + "\n")
	for _, f := range cmd.Flags {
		d, ok := f.(cli.DocGenerationFlag)
		if !ok || len(d.GetEnvVars()) == 0 {
			return fmt.Errorf("envfile %s: flag --%s has no environment variable", r.name, f.Names()[0])
		}
		placeholder, usage := unquoteUsage(d.GetUsage())
		name := "--" + f.Names()[0]
		if d.TakesValue() {
			if placeholder == "" {
				placeholder = "VALUE"
			}
			name += " " + placeholder
		}
		def := d.GetValue()
		if !d.TakesValue() {
			def = "false"
		}
		if _, slice := f.(*cli.StringSliceFlag); slice {
			usage += " (one value here; more only on the command line)"
			def = ""
		}
		fmt.Fprintf(&b, "\n# %s\n", name)
		for _, line := range wrap(usage, 76) {
			fmt.Fprintf(&b, "#   %s\n", line)
		}
		fmt.Fprintf(&b, "#%s=%s\n", d.GetEnvVars()[0], envQuote(def))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// envQuote quotes a value for a systemd EnvironmentFile when it needs it.
func envQuote(v string) string {
	if v == "" || !strings.ContainsAny(v, " \t\"'\\$#") {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`).Replace(v) + `"`
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}

// unquoteUsage splits a usage string into its `PLACEHOLDER` and the text
// without the backquotes, as urfave/cli's help does.
func unquoteUsage(usage string) (placeholder, text string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	j += i + 1
	return usage[i+1 : j], usage[:i] + usage[i+1:j] + usage[j+1:]
}
