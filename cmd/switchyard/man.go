package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// manCommand prints the switchyard(1) man page, roff generated from the
// command tree: switchyard man | man -l -
func manCommand() *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the switchyard(1) man page (roff; view it with: switchyard man | man -l -)",
		Action: func(c *cli.Context) error {
			page, err := c.App.ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("man: render the man page: %w", err)
			}
			_, err = fmt.Fprint(c.App.Writer, page)
			return err
		},
	}
}
