package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// TestEnvFileHasEveryFlag: each daemon's environment file names every flag
// of its command, with the variable that sets it, commented out.
func TestEnvFileHasEveryFlag(t *testing.T) {
	for _, r := range daemonRoles {
		t.Run(r.name, func(t *testing.T) {
			var out bytes.Buffer
			app := newApp(&out, io.Discard)
			if err := app.Run([]string{"switchyard", "envfile", r.name}); err != nil {
				t.Fatal(err)
			}
			file := out.String()
			cmd := findCommand(newApp(io.Discard, io.Discard), r.path)
			if len(cmd.Flags) < 5 {
				t.Fatalf("%s has %d flags", strings.Join(r.path, " "), len(cmd.Flags))
			}
			for _, f := range cmd.Flags {
				name := f.Names()[0]
				if !strings.Contains(file, "\n# --"+name+"\n") && !strings.Contains(file, "\n# --"+name+" ") {
					t.Errorf("no line for --%s", name)
				}
				env := f.(cli.DocGenerationFlag).GetEnvVars()
				if len(env) != 1 || !strings.Contains(file, "\n#"+env[0]+"=") {
					t.Errorf("--%s: variable %v not in the file", name, env)
				}
			}
			for line := range strings.Lines(file) {
				if line != "\n" && !strings.HasPrefix(line, "#") {
					t.Errorf("uncommented line %q: the file must change nothing", line)
				}
			}
		})
	}
}

// TestEnvFileVariablesSetFlags: every daemon flag takes its value from its
// variable, and a flag on the command line wins over it.
func TestEnvFileVariablesSetFlags(t *testing.T) {
	global := map[string]bool{"SWITCHYARD_PATH_MTU": true} // read by the agents themselves
	for _, f := range newApp(io.Discard, io.Discard).Flags {
		for _, e := range f.(cli.DocGenerationFlag).GetEnvVars() {
			global[e] = true
		}
	}
	for _, r := range daemonRoles {
		seen := map[string]string{}
		for _, f := range findCommand(newApp(io.Discard, io.Discard), r.path).Flags {
			name := f.Names()[0]
			env := f.(cli.DocGenerationFlag).GetEnvVars()[0]
			if global[env] {
				t.Errorf("%s --%s: %s is the CLI's own variable", r.name, name, env)
			}
			if other, dup := seen[env]; dup {
				t.Errorf("%s: --%s and --%s share %s", r.name, name, other, env)
			}
			seen[env] = name
			t.Run(r.name+"/"+name, func(t *testing.T) {
				val, want, flagVal, flagWant := envSample(f)
				t.Setenv("SWITCHYARD_TUNNEL_TOKEN", "tok") // connector run requires it
				t.Setenv(env, val)
				if got := runCaptured(t, r.path, name); got != want {
					t.Errorf("%s=%s: --%s is %q, want %q", env, val, name, got, want)
				}
				if _, ok := f.(*cli.BoolFlag); ok {
					return
				}
				cmdline := "--" + name + "=" + flagVal
				if got := runCaptured(t, r.path, name, cmdline); got != flagWant {
					t.Errorf("%s with %s set: --%s is %q, want %q", cmdline, env, name, got, flagWant)
				}
			})
		}
	}
}

// envSample is a value for f's variable and the flag value it gives, then
// another given on the command line and its flag value.
func envSample(f cli.Flag) (env, envWant, flag, flagWant string) {
	switch f.(type) {
	case *cli.BoolFlag:
		return "true", "true", "", ""
	case *cli.IntFlag, *cli.UintFlag:
		return "7", "7", "9", "9"
	case *cli.DurationFlag:
		return "7s", (7 * time.Second).String(), "9m", (9 * time.Minute).String()
	case *cli.StringSliceFlag:
		return "2222:127.0.0.1:22", "[2222:127.0.0.1:22]", "80", "[80]"
	}
	return "203.0.113.7", "203.0.113.7", "198.51.100.9", "198.51.100.9"
}

// runCaptured runs the command at path with args and returns the value of
// flag that its action saw, instead of running the daemon.
func runCaptured(t *testing.T, path []string, flag string, args ...string) string {
	t.Helper()
	app := newApp(io.Discard, io.Discard)
	var got string
	findCommand(app, path).Action = func(c *cli.Context) error {
		got = fmt.Sprint(c.Value(flag))
		if s, ok := c.Value(flag).(cli.StringSlice); ok {
			got = fmt.Sprint(s.Value())
		}
		return nil
	}
	if err := app.Run(append(append([]string{"switchyard"}, path...), args...)); err != nil {
		t.Fatalf("%s %v: %v", strings.Join(path, " "), args, err)
	}
	return got
}
