package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionCommand prints a shell's completion script, generated from the
// command tree: static, so completing never runs the binary.
func completionCommand() *cli.Command {
	gen := func(write func(io.Writer, []compNode)) cli.ActionFunc {
		return func(c *cli.Context) error {
			nodes, err := completionTree(c.App)
			if err != nil {
				return err
			}
			write(c.App.Writer, nodes)
			return nil
		}
	}
	return &cli.Command{
		Name:  "completion",
		Usage: "print a shell completion script (bash, zsh or fish)",
		Description: "bash: switchyard completion bash > /etc/bash_completion.d/switchyard (or source <(switchyard completion bash))\n" +
			"zsh:  switchyard completion zsh > \"${fpath[1]}/_switchyard\"\n" +
			"fish: switchyard completion fish > ~/.config/fish/completions/switchyard.fish",
		Subcommands: []*cli.Command{
			{Name: "bash", Usage: "print the bash completion script", Action: gen(writeBash)},
			{Name: "zsh", Usage: "print the zsh completion script", Action: gen(writeZsh)},
			{Name: "fish", Usage: "print the fish completion script", Action: gen(writeFish)},
		},
	}
}

// compNode is one command of the tree: its path from the app ("" is the app,
// "tunnel route"), what may follow it and its flags.
type compNode struct {
	path  string
	cmds  []compCmd
	flags []compFlag
}

// compCmd is a subcommand: its names (the first one canonical) and usage.
type compCmd struct {
	names []string
	usage string
}

// compFlag is a flag: its names as typed ("--api", "-o") and whether it takes a value.
type compFlag struct {
	names  []string
	usage  string
	valued bool
}

// safeName is what the scripts put unquoted in case patterns and word lists.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// completionTree walks the app's visible commands depth first.
func completionTree(app *cli.App) ([]compNode, error) {
	var nodes []compNode
	var walk func(path string, cmds []*cli.Command, flags []cli.Flag) error
	walk = func(path string, cmds []*cli.Command, flags []cli.Flag) error {
		n := compNode{path: path}
		for _, f := range flags {
			cf, err := completionFlag(f)
			if err != nil {
				return err
			}
			if cf != nil {
				n.flags = append(n.flags, *cf)
			}
		}
		if !hasHelp(n.flags) {
			n.flags = append(n.flags, compFlag{names: []string{"--help", "-h"}, usage: "show help"})
		}
		var children []*cli.Command
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			for _, name := range c.Names() {
				if !safeName.MatchString(name) {
					return fmt.Errorf("completion: command name %q of %q is not a plain word", name, path)
				}
			}
			n.cmds = append(n.cmds, compCmd{names: c.Names(), usage: firstLine(c.Usage)})
			children = append(children, c)
		}
		nodes = append(nodes, n)
		for _, c := range children {
			if err := walk(strings.TrimSpace(path+" "+c.Name), c.Subcommands, c.VisibleFlags()); err != nil {
				return err
			}
		}
		return nil
	}
	return nodes, walk("", app.Commands, app.VisibleFlags())
}

func completionFlag(f cli.Flag) (*compFlag, error) {
	if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
		return nil, nil
	}
	cf := &compFlag{}
	if d, ok := f.(cli.DocGenerationFlag); ok {
		cf.usage, cf.valued = firstLine(d.GetUsage()), d.TakesValue()
	}
	for _, name := range f.Names() {
		name = strings.TrimSpace(name)
		if !safeName.MatchString(name) {
			return nil, fmt.Errorf("completion: flag name %q is not a plain word", name)
		}
		if len(name) == 1 {
			cf.names = append(cf.names, "-"+name)
		} else {
			cf.names = append(cf.names, "--"+name)
		}
	}
	return cf, nil
}

func hasHelp(flags []compFlag) bool {
	for _, f := range flags {
		for _, n := range f.names {
			if n == "--help" {
				return true
			}
		}
	}
	return false
}

// firstLine is a usage string cut to its first line, without backquotes
// (urfave/cli's placeholder marks).
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "`", "")
}

// allNames lists every subcommand name and alias of a node.
func (n compNode) allNames() []string {
	var out []string
	for _, c := range n.cmds {
		out = append(out, c.names...)
	}
	return out
}

// flagNames lists a node's flag names; valuedOnly keeps those taking a value.
func (n compNode) flagNames(valuedOnly bool) []string {
	var out []string
	for _, f := range n.flags {
		if f.valued || !valuedOnly {
			out = append(out, f.names...)
		}
	}
	return out
}
