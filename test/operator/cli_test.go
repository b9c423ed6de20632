package operator

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

var binaries = []string{"acme-renew", "bastion", "blocklist-agent", "blocklistd", "pki"}

// run runs bin with args and returns its combined output and exit status.
func run(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("%s %v: %v", bin, args, err)
	return "", -1
}

func TestVersionEveryBinary(t *testing.T) {
	dir := buildAll(t)
	for _, b := range binaries {
		out, code := run(t, filepath.Join(dir, b), "--version")
		if code != 0 || !strings.HasPrefix(out, b+" ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("%s --version: exit %d, %q; want 0 and %q ... %s", b, code, out, b, runtime.Version())
		}
	}
}

// verbs are the verbs a binary's usage lists: the first word of each line
// indented by exactly two spaces.
func verbs(usage string) []string {
	var vs []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)\b`).FindAllStringSubmatch(usage, -1) {
		vs = append(vs, m[1])
	}
	return vs
}

// subVerbs are the verbs that take a second word.
var subVerbs = map[string][]string{
	"bastion user":    {"add"},
	"bastion audit":   {"verify"},
	"blocklistd feed": {"status", "fetch", "accept"},
}

// positional are the verbs whose synopsis must show their positional
// arguments.
var positional = map[string]string{
	"pki token":        "NAME",
	"pki revoke":       "SERIAL",
	"blocklistd ban":   "PREFIX",
	"blocklistd unban": "PREFIX",
	"blocklistd allow": "PREFIX",
	"bastion user add": "NAME",
	"bastion replay":   "FILE",
	"bastion watch":    "ID",
}

// TestHelpEveryVerb runs --help for every verb of every binary: it must
// exit 0 and print a usage line naming the verb (with its positional
// arguments) and a description.
func TestHelpEveryVerb(t *testing.T) {
	dir := buildAll(t)
	seen := map[string]bool{}
	for _, b := range binaries {
		usage, code := run(t, filepath.Join(dir, b), "--help")
		if code != 0 {
			t.Errorf("%s --help: exit %d", b, code)
		}
		vs := verbs(usage)
		if len(vs) < 3 {
			t.Errorf("%s --help lists %d verbs: %v\n%s", b, len(vs), vs, usage)
		}
		for _, v := range vs {
			cmds := [][]string{{v}}
			for _, sub := range subVerbs[b+" "+v] {
				cmds = append(cmds, []string{v, sub})
			}
			for _, c := range cmds {
				name := b + " " + strings.Join(c, " ")
				seen[name] = true
				out, code := run(t, filepath.Join(dir, b), append(c, "--help")...)
				if code != 0 {
					t.Errorf("%s --help: exit %d\n%s", name, code, out)
					continue
				}
				usageLine := regexp.MustCompile(`(?m)^[Uu]sage: ` + regexp.QuoteMeta(name) + `\b.*$`).FindString(out)
				if usageLine == "" {
					t.Errorf("%s --help: no line \"usage: %s ...\":\n%s", name, name, out)
					continue
				}
				if arg := positional[name]; arg != "" && !strings.Contains(usageLine, arg) {
					t.Errorf("%s --help: usage line %q does not show %s", name, usageLine, arg)
				}
				if !hasDescription(out) {
					t.Errorf("%s --help: no description line:\n%s", name, out)
				}
			}
		}
	}
	for name := range positional {
		if !seen[name] {
			t.Errorf("%s is not listed by its binary's --help", name)
		}
	}
}

// hasDescription reports whether help text has a line of prose: neither
// the usage line, a flag, a flag's description nor a heading.
func hasDescription(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case t == "", strings.HasPrefix(strings.ToLower(t), "usage:"), strings.HasPrefix(t, "-"),
			strings.HasPrefix(l, "    \t"), strings.HasSuffix(t, ":"):
			continue
		}
		if len(strings.Fields(t)) >= 3 {
			return true
		}
	}
	return false
}

// TestBastionServeNeedsUsers: a config without users (a typo'd users_dir,
// say) is refused at start and by --check, naming how to add one.
func TestBastionServeNeedsUsers(t *testing.T) {
	dir := buildAll(t)
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "bastion.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nstate_dir: "+tmp+"/state\nusers_dir: "+tmp+"/users.d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"serve", "--config", cfg}, {"serve", "--check", "--config", cfg}} {
		out, code := run(t, filepath.Join(dir, "bastion"), args...)
		if code == 0 || !strings.Contains(out, "no users") || !strings.Contains(out, "bastion user add") {
			t.Errorf("bastion %v with no users: exit %d, %q", args, code, out)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "state")); err == nil {
		t.Errorf("bastion serve created its state directory before refusing")
	}
}
