// Command switchyard is the one binary: the edge daemon and the CLI that
// manages virtual networks, tunnels and routes through the edge's API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/model"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp(os.Stdout, os.Stderr)
	if err := app.RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "switchyard:", describe(err))
		os.Exit(exitCode(err))
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "switchyard",
		Usage:                "a self-hosted Layer-3 virtual router: edge, connector and control CLI",
		Version:              version,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		// A repeated flag is one value each time: policy conditions hold commas.
		DisableSliceFlagSeparator: true,
		Flags:                     apiFlags,
		Commands: []*cli.Command{
			edgeCommand(),
			tunnelCommand(),
			connectorCommand(),
			clientCommand(),
			accessCommand(),
			deviceCommand(),
			enrollmentCommand(),
			userCommand(),
			postureCommand(),
			splitTunnelCommand(),
			dnsCommand(),
			statsCommand(),
			policyCommand(),
			flowsCommand(),
			loginCommand(),
			logoutCommand(),
			doctorCommand(),
			completionCommand(),
			manCommand(),
			envFileCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main reports errors
	}
	checkPositional(app)
	return app
}

// describe renders an error for people; API errors show their code like
// cloudflared. The message may quote what an agent sent, so it is escaped.
func describe(err error) string {
	var e *model.Error
	if errors.As(err, &e) && e.Code != 0 {
		return printable(fmt.Sprintf("code: %d, reason: %s", e.Code, e.Message))
	}
	return printable(err.Error())
}

// exitCode maps an error to the process exit status: the one place that does.
func exitCode(err error) int {
	var e *model.Error
	if !errors.As(err, &e) {
		return 1
	}
	switch e.Kind {
	case model.KindInvalid:
		return 2
	case model.KindNotFound:
		return 3
	case model.KindConflict, model.KindForbidden:
		return 4
	case model.KindUnauthorized:
		return 5
	case model.KindUnavailable:
		return 6
	}
	return 1
}
