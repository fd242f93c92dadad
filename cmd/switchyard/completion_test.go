package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// topCommands are the commands every generated document must name.
var topCommands = []string{"edge", "tunnel", "connector", "client", "device", "user", "policy", "flows", "dns", "login"}

// generate runs `switchyard ARGS...` in process and returns what it printed.
func generate(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := newApp(&out, &errOut).RunContext(ctx, append([]string{"switchyard"}, args...)); err != nil {
		t.Fatalf("switchyard %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// writeScript saves a generated script in the test's directory.
func writeScript(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCompletionScriptsNameTheTree: each shell's script names every top-level
// command and a subcommand three levels down, and its shell parses it.
func TestCompletionScriptsNameTheTree(t *testing.T) {
	for _, sh := range []struct{ name, nested, check string }{
		{"bash", `'tunnel route ip/add') echo add`, "bash"},
		{"zsh", `'add:route a network (CIDR) to a tunnel'`, "zsh"},
		{"fish", `-n '__switchyard_at "tunnel route ip"' -f -a add`, "fish"},
	} {
		t.Run(sh.name, func(t *testing.T) {
			script := generate(t, "completion", sh.name)
			for _, c := range topCommands {
				if !strings.Contains(script, "/"+c+"'") {
					t.Errorf("the %s script does not know the command %q", sh.name, c)
				}
			}
			if !strings.Contains(script, sh.nested) {
				t.Errorf("the %s script lacks %q (tunnel route ip add)", sh.name, sh.nested)
			}
			shell, err := exec.LookPath(sh.check)
			if err != nil {
				t.Skipf("%s is not installed: the script's syntax is not checked", sh.check)
			}
			if out, err := exec.Command(shell, "-n", writeScript(t, "script", script)).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", sh.check, err, out)
			}
		})
	}
}

// TestBashCompletionCompletes sources the bash script and asks it what a
// user pressing Tab after each line would see.
func TestBashCompletionCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	script := writeScript(t, "switchyard.bash", generate(t, "completion", "bash"))
	for _, tc := range []struct{ line, want string }{
		{"switchyard tu", "tunnel"},
		{"switchyard tunnel route ip ", "add show list get delete rm overlaps"},
		{"switchyard tunnel route ip s", "show"},
		// --api takes a value, which is not a command: routes are still found.
		{"switchyard --api https://192.0.2.1:7443 tunnel ro", "route"},
		{"switchyard tunnel route ip add --v", "--vnet --vn"},
		{"switchyard --to", "--token"},
		// bash splits at = and :, the script joins them back.
		{"switchyard --api = https : //192.0.2.1 : 7443 tunnel ro", "route"},
		// A flag's value: nothing (bash then offers files).
		{"switchyard --config ", ""},
		// After an argument, no candidates (flags there are refused).
		{"switchyard tunnel bogus ", ""},
		{"switchyard tunnel route ip add 192.0.2.0/24 --", ""},
	} {
		words := strings.Fields(tc.line)
		if strings.HasSuffix(tc.line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shQuote(w)
		}
		prog := "source " + shQuote(script) + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_switchyard\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("Tab after %q offers %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestFishCompletionCompletes asks fish itself, when it is installed.
func TestFishCompletionCompletes(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("fish is not installed: fish completion is only checked for its text")
	}
	script := writeScript(t, "switchyard.fish", generate(t, "completion", "fish"))
	out, err := exec.Command(fish, "--no-config", "-c", "source "+shQuote(script)+"; complete -C 'switchyard tunnel route ip '").CombinedOutput()
	if err != nil {
		t.Fatalf("fish: %v\n%s", err, out)
	}
	for _, want := range []string{"add\t", "show\t", "overlaps\t"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("fish completes 'switchyard tunnel route ip ' without %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "vnet\t") {
		t.Errorf("fish offers tunnel's subcommand vnet under tunnel route ip:\n%s", out)
	}
}

// TestManPage: the page is roff with a title, names every top-level command
// and a nested one, and man renders it without a warning.
func TestManPage(t *testing.T) {
	page := generate(t, "man")
	if !strings.Contains(page, "\n.TH switchyard 1") {
		t.Errorf("the man page has no .TH switchyard 1 line:\n%.300s", page)
	}
	for _, c := range append(topCommands, "completion") {
		if !strings.Contains(page, "\n.SH "+c+"\n") {
			t.Errorf("the man page has no section for %q", c)
		}
	}
	if !strings.Contains(page, "\n.SS overlaps\n") {
		t.Error("the man page lacks tunnel route ip overlaps")
	}
	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("man is not installed: the page is not rendered")
	}
	cmd := exec.Command(man, "--warnings", "-l", writeScript(t, "switchyard.1", page))
	cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=100")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("man -l: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "tunnel") || !strings.Contains(stdout.String(), "GLOBAL OPTIONS") {
		t.Errorf("the rendered page lacks the tunnel command or the global options:\n%.500s", stdout.String())
	}
}

// TestZshCompletionCompletes runs the zsh script's function with zsh's
// completion builtins replaced by ones that print what they were given
// (zsh filters those by the typed prefix itself).
func TestZshCompletionCompletes(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh is not installed: zsh completion is only checked for its text")
	}
	script := writeScript(t, "_switchyard", generate(t, "completion", "zsh"))
	prog := `compdef() { :; }
_describe() { local -a arr; arr=("${(@P)4}"); print -r -- "$2: ${(j: | :)${(@)arr%%:*}}"; }
_files() { print files; }
source ` + shQuote(script) + `
t() { words=("$@"); CURRENT=$#; _switchyard; }
t switchyard tunnel route ip ''
t switchyard --api https://192.0.2.1:7443 tunnel ro
t switchyard tunnel route ip add -
t switchyard --config ''
t switchyard tunnel bogus ''
`
	out, err := exec.Command(zsh, "-f", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	want := "commands: add | show | list | get | delete | rm | overlaps\n" +
		"commands: create | list | delete | token | failover | vnet | route\n" + // zsh then keeps those starting with ro

		"options: --vnet | --vn | --if-not-exists | --help | -h\n" +
		"files\nfiles\n"
	if string(out) != want {
		t.Errorf("zsh completes:\n%s\nwant:\n%s", out, want)
	}
}
