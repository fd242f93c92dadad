package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// Flags shared by policy add and update.
var (
	policyWhenFlag = &cli.StringSliceFlag{Name: "when", Usage: "a `CONDITION` \"SELECTOR OPERATOR VALUE\", repeatable; selectors: " +
		strings.Join(model.Selectors, ", ") + "; operators: is, is not, in, not in, matches (RE2), and >=, >, <=, < for versions (" + strings.Join(model.VersionSelectors, ", ") + ")"}
	policyAnyFlag    = &cli.BoolFlag{Name: "any", Usage: "match when any --when condition holds (default: all)"}
	policyMatchFlag  = &cli.StringFlag{Name: "match", Usage: "the whole condition as `JSON` ({\"and\":[{\"selector\":...,\"operator\":...,\"values\":[...]}]}), instead of --when"}
	policyActionFlag = &cli.StringFlag{Name: "action", Usage: "`ACTION`: allow or block"}
	policyPrecFlag   = &cli.IntFlag{Name: "precedence", Usage: "evaluation order `N`, 0-1000000000 (lower first; default after the last)"}
	policySilentFlag = &cli.BoolFlag{Name: "silent", Usage: "block without a TCP RST or ICMP error"}
	policyCommFlag   = &cli.StringFlag{Name: "comment", Usage: "a `COMMENT`"}
	policyNameFlag   = &cli.StringFlag{Name: "name", Usage: "a new `NAME`"}
)

func policyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "manage network policies: ordered allow/block rules the edge applies to every flow, first match wins",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add a policy",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{policyActionFlag, policyWhenFlag, policyAnyFlag, policyMatchFlag, policyPrecFlag, policySilentFlag, policyCommFlag, outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					name, err := oneArg(c, "NAME")
					if err != nil {
						return err
					}
					match, err := policyMatch(c)
					if err != nil {
						return err
					}
					if match == nil {
						return model.Errorf(model.KindInvalid, "policy add: give the condition with --when or --match")
					}
					req := model.NewPolicy{Name: name, Action: c.String("action"), Silent: c.Bool("silent"), Match: *match, Comment: c.String("comment")}
					if c.IsSet("precedence") {
						n := c.Int("precedence")
						req.Precedence = &n
					}
					p, err := api.CreatePolicy(ctx, req)
					if err != nil {
						return err
					}
					return showPolicy(ctx, c, api, p)
				}),
			},
			{
				Name:  "list",
				Usage: "list the policies in evaluation order, and the default action",
				Flags: []cli.Flag{outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ps, err := api.ListPolicies(ctx)
					if err != nil {
						return err
					}
					def, err := api.PolicyDefault(ctx)
					if err != nil {
						return err
					}
					names := api.ObjectNames(ctx)
					return render(c, ps, func(w *tabwriter.Writer) {
						row(w, "PRECEDENCE", "ID", "NAME", "ACTION", "MATCH")
						for _, p := range ps {
							row(w, p.Precedence, p.ID, p.Name, action(p), p.Match.WithNames(names).String())
						}
						row(w, "-", "-", "(default)", def.Action, "everything else")
					})
				}),
			},
			{
				Name:      "show",
				Usage:     "show a policy",
				ArgsUsage: "NAME|ID",
				Flags:     []cli.Flag{outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ref, err := oneArg(c, "NAME|ID")
					if err != nil {
						return err
					}
					p, err := api.GetPolicy(ctx, ref)
					if err != nil {
						return err
					}
					return showPolicy(ctx, c, api, p)
				}),
			},
			{
				Name:      "update",
				Usage:     "change a policy; --when or --match replaces its whole condition",
				ArgsUsage: "NAME|ID",
				Flags:     []cli.Flag{policyNameFlag, policyActionFlag, policyWhenFlag, policyAnyFlag, policyMatchFlag, policyPrecFlag, policySilentFlag, policyCommFlag, outputFlag},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ref, err := oneArg(c, "NAME|ID")
					if err != nil {
						return err
					}
					var patch model.PolicyPatch
					if patch.Match, err = policyMatch(c); err != nil {
						return err
					}
					if c.IsSet("name") {
						patch.Name = ptr(c.String("name"))
					}
					if c.IsSet("action") {
						patch.Action = ptr(c.String("action"))
					}
					if c.IsSet("precedence") {
						patch.Precedence = ptr(c.Int("precedence"))
					}
					if c.IsSet("silent") {
						patch.Silent = ptr(c.Bool("silent"))
					}
					if c.IsSet("comment") {
						patch.Comment = ptr(c.String("comment"))
					}
					p, err := api.UpdatePolicy(ctx, ref, patch)
					if err != nil {
						return err
					}
					return showPolicy(ctx, c, api, p)
				}),
			},
			{
				Name:      "delete",
				Usage:     "delete a policy",
				ArgsUsage: "NAME|ID",
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ref, err := oneArg(c, "NAME|ID")
					if err != nil {
						return err
					}
					p, err := api.DeletePolicy(ctx, ref)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Deleted policy %s (%s)\n", p.Name, p.ID)
					return nil
				}),
			},
			{
				Name:      "move",
				Usage:     "move a policy before or after another (renumbering all), or to a free precedence",
				ArgsUsage: "NAME|ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "before", Usage: "place it just before `POLICY`"},
					&cli.StringFlag{Name: "after", Usage: "place it just after `POLICY`"},
					policyPrecFlag, outputFlag,
				},
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					ref, err := oneArg(c, "NAME|ID")
					if err != nil {
						return err
					}
					m := model.PolicyMove{Before: c.String("before"), After: c.String("after")}
					if c.IsSet("precedence") {
						m.Precedence = ptr(c.Int("precedence"))
					}
					ps, err := api.MovePolicy(ctx, ref, m)
					if err != nil {
						return err
					}
					return render(c, ps, func(w *tabwriter.Writer) {
						row(w, "PRECEDENCE", "NAME", "ACTION")
						for _, p := range ps {
							row(w, p.Precedence, p.Name, action(p))
						}
					})
				}),
			},
			{
				Name:      "default",
				Usage:     "show or set the action for flows no policy matches",
				ArgsUsage: "[allow|block]",
				Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
					if err := checkArgs(c, 0, 1, "[allow|block]"); err != nil {
						return err
					}
					var d model.PolicyDefault
					var err error
					if c.NArg() == 1 {
						d, err = api.SetPolicyDefault(ctx, model.PolicyDefault{Action: c.Args().First()})
					} else {
						d, err = api.PolicyDefault(ctx)
					}
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Default action: %s\n", d.Action)
					return nil
				}),
			},
			policyTestCommand(),
		},
	}
}

// policyMatch builds the condition from --match or --when/--any; nil when neither is given.
func policyMatch(c *cli.Context) (*model.Expr, error) {
	whens := c.StringSlice("when")
	switch {
	case c.IsSet("match") && len(whens) > 0:
		return nil, model.Errorf(model.KindInvalid, "give either --when or --match, not both")
	case c.IsSet("match"):
		var e model.Expr
		if err := json.Unmarshal([]byte(c.String("match")), &e); err != nil {
			return nil, model.Errorf(model.KindInvalid, "--match is not a JSON condition: %v", err)
		}
		return &e, nil
	case len(whens) == 0:
		return nil, nil
	}
	var conds []model.Expr
	for _, w := range whens {
		e, err := model.ParseCondition(w)
		if err != nil {
			return nil, err
		}
		conds = append(conds, e)
	}
	if len(conds) == 1 {
		return &conds[0], nil
	}
	if c.Bool("any") {
		return &model.Expr{Or: conds}, nil
	}
	return &model.Expr{And: conds}, nil
}

func action(p model.Policy) string {
	if p.Action == model.ActionBlock && p.Silent {
		return "block (silent)"
	}
	return p.Action
}

func showPolicy(ctx context.Context, c *cli.Context, api *client.Client, p model.Policy) error {
	names := api.ObjectNames(ctx)
	return render(c, p, func(w *tabwriter.Writer) {
		row(w, "ID:", p.ID)
		row(w, "Name:", p.Name)
		row(w, "Precedence:", p.Precedence)
		row(w, "Action:", action(p))
		row(w, "Match:", p.Match.WithNames(names).String())
		row(w, "Comment:", p.Comment)
		row(w, "Updated:", p.UpdatedAt)
	})
}

func ptr[T any](v T) *T { return &v }
