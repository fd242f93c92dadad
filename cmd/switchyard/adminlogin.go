package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// loginCommand signs an admin in with the edge's identity provider and keeps
// the admin session for the commands that follow.
func loginCommand() *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "sign in as an admin with the edge's identity provider; later commands use the admin session until it ends",
		Description: "The edge must run with --oidc-issuer and --oidc-admin-group, and you must be in that group.\n" +
			"The session is kept in --session FILE (mode 0600) for the edge it was made on, and used when no --token is given.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "flow", Usage: "`FLOW` device (a URL and a code, from any machine) or browser (a URL to open)", Value: "device"},
		},
		Action: runLogin,
	}
}

// logoutCommand ends the admin session on its edge and forgets it.
func logoutCommand() *cli.Command {
	return &cli.Command{
		Name:   "logout",
		Usage:  "end the admin session of switchyard login on its edge, and forget it",
		Action: runLogout,
	}
}

func runLogout(c *cli.Context) error {
	path, err := sessionPath(c)
	if err != nil {
		return err
	}
	sess, _ := loadSession(path) // unreadable or broken: removed all the same
	if sess != nil && sess.expired(time.Now()) == nil {
		if err := endSession(c, sess); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "switchyard: the edge did not end the admin session (%s); it stays valid there until %s\n",
				describe(err), sess.ExpiresAt.Local().Format(time.RFC3339))
		}
	}
	if err := os.Remove(path); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(c.App.Writer, "No admin session in %s\n", path)
		return nil
	} else if err != nil {
		return fmt.Errorf("forget admin session: %w", err)
	}
	who := "the admin session"
	if sess != nil {
		who += " of " + printable(sess.Email)
	}
	fmt.Fprintf(c.App.Writer, "Signed out: ended and forgot %s (%s)\n", who, path)
	return nil
}

// endSession asks the session's edge to end it; an edge that no longer
// knows it (it restarted) has nothing to end.
func endSession(c *cli.Context, sess *adminSessionFile) error {
	var ca []byte
	if sess.CA != "" {
		ca = []byte(sess.CA)
	}
	api, err := client.New(sess.API, sess.Token, ca, clientOptions(c)...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	if err := api.EndAdminSession(ctx); err != nil && !errors.Is(err, model.ErrUnauthorized) {
		return err
	}
	return nil
}

func runLogin(c *cli.Context) error {
	flow := c.String("flow")
	if flow != "device" && flow != "browser" {
		return model.Errorf(model.KindInvalid, "login: --flow %q: give device or browser", flow)
	}
	path, err := sessionPath(c)
	if err != nil {
		return err
	}
	ep, err := resolveAPI(c, false)
	if err != nil {
		return err
	}
	api, err := client.NewAdminSignIn(ep.api, ep.ca, clientOptions(c)...)
	if err != nil {
		return err
	}
	ctx := c.Context
	l, err := api.StartAdminLogin(ctx, flow)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	client.PrintLogin(c.App.Writer, l, "as an admin")
	sess, err := waitAdminLogin(ctx, api, l)
	if ctx.Err() != nil {
		return errors.New("login: stopped before the sign-in finished; nothing was saved")
	}
	if err != nil {
		return err
	}
	f := adminSessionFile{API: ep.api, CA: string(ep.ca), Token: sess.Token, Email: sess.Identity.Email, ExpiresAt: sess.ExpiresAt}
	if err := saveSession(path, f); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "Signed in to %s as %s; the admin session lasts until %s (kept in %s).\n",
		ep.api, printable(sess.Identity.Email), sess.ExpiresAt.Local().Format(time.RFC3339), path)
	return nil
}

// maxLoginBackoff bounds the wait between polls that the edge slowed down.
const maxLoginBackoff = 30 * time.Second

// waitAdminLogin polls at the sign-in's interval until it is done, refused,
// or ctx ends; an edge that says to slow down (429) is polled less often.
func waitAdminLogin(ctx context.Context, api *client.Client, l client.LoginStart) (*client.AdminSession, error) {
	every := time.Duration(max(l.Interval, 1)) * time.Second
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(every):
		}
		sess, err := api.PollAdminLogin(ctx, l.ID)
		var e *model.Error
		switch {
		case errors.As(err, &e) && e.Code == model.CodeRateLimited:
			every = min(2*every, maxLoginBackoff)
		case err != nil:
			return nil, err
		case sess != nil:
			return sess, nil
		}
	}
}
