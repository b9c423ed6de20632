package operator

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRCDScripts checks the OpenBSD rc.d scripts follow one rule: the
// verb is part of daemon=, daemon_flags holds flags only, and the
// documented `rcctl set NAME flags "..."` (which replaces daemon_flags)
// gives a command line the binary accepts. rc.subr itself cannot run
// here; the command it would run is run with --help (every verb parses
// its flags first) and --check is what rc_pre runs.
func TestRCDScripts(t *testing.T) {
	bin := buildAll(t)
	scripts := []string{"bastion/rc.d/bastion", "blocklist/rc.d/blocklistd", "blocklist/rc.d/blocklist_agent", "pki/openbsd/rampart_pki"}
	daemonRE := regexp.MustCompile(`(?m)^daemon="([^"]+)"$`)
	flagsRE := regexp.MustCompile(`(?m)^daemon_flags="([^"]+)"$`)
	rcctlRE := regexp.MustCompile(`rcctl set (\S+) flags "([^"]+)"`)
	for _, s := range scripts {
		data, err := os.ReadFile(filepath.Join(examplesDir(), s))
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		name := filepath.Base(s)
		d, f, r := daemonRE.FindStringSubmatch(text), flagsRE.FindStringSubmatch(text), rcctlRE.FindStringSubmatch(text)
		if d == nil || f == nil || r == nil {
			t.Errorf("%s: want daemon=, daemon_flags= and a documented rcctl set %s flags line", s, name)
			continue
		}
		daemon := strings.Fields(d[1])
		if len(daemon) != 2 || !strings.HasPrefix(daemon[0], "/usr/local/bin/") {
			t.Errorf("%s: daemon=%q: want the binary and its verb", s, d[1])
			continue
		}
		if !strings.HasPrefix(f[1], "--") || !strings.HasPrefix(r[2], "--") {
			t.Errorf("%s: daemon_flags=%q, documented flags %q: flags only, the verb is in daemon=", s, f[1], r[2])
		}
		if r[1] != name || r[2] != f[1] {
			t.Errorf("%s: documents rcctl set %s flags %q; want rcctl set %s flags %q", s, r[1], r[2], name, f[1])
		}
		if !strings.Contains(text, "--check") {
			t.Errorf("%s: rc_pre does not run --check", s)
		}
		args := append([]string{daemon[1]}, strings.Fields(r[2])...)
		out, code := run(t, filepath.Join(bin, filepath.Base(daemon[0])), append(args, "--help")...)
		if code != 0 {
			t.Errorf("%s: %s %s --help: exit %d\n%s", s, daemon[0], strings.Join(args, " "), code, out)
		}
		out, _ = run(t, filepath.Join(bin, filepath.Base(daemon[0])), daemon[1], "--help")
		if !strings.Contains(out, "-check") {
			t.Errorf("%s: %s %s has no --check for rc_pre", s, daemon[0], daemon[1])
		}
	}
}
