package firewall_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI runs blocklist-agent apply and flush as a user would, with the
// pf backend against the fake pfctl (no root needed): output, rejected
// lines, exit codes, --help.
func TestCLI(t *testing.T) {
	bin := agent(t)
	pfctl := fakePfctl(t)
	state := t.TempDir()
	os.MkdirAll(filepath.Join(state, "tables"), 0o755)
	writeFile(t, filepath.Join(state, "tables", "rampart"), "")
	dir := t.TempDir()
	drop := writeFile(t, filepath.Join(dir, "drop.txt"), "; Spamhaus DROP\n1.10.16.0/20 ; SBL256894\n10.0.0.0/7 ; too broad\n")
	local := writeFile(t, filepath.Join(dir, "local.txt"), "192.0.2.7\n192.0.2.8\nbogus\n198.51.100.10\n")

	run := func(stdin string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "FAKEPFCTL_DIR="+state, "TMPDIR="+dir)
		cmd.Stdin = strings.NewReader(stdin)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}
	table := func() string {
		b, _ := os.ReadFile(filepath.Join(state, "tables", "rampart"))
		return string(b)
	}

	out, errOut, code := run("2001:db8::/48\n", "apply", "--backend", "pf", "--pfctl", pfctl,
		"--file", drop, "--file", local, "--file", "-", "--allow", "198.51.100.10")
	if code != 0 {
		t.Fatalf("apply exited %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "pf: 2 addresses, 2 prefixes after merging, 1 allowlisted, 0 refused as too broad, 2 rejected lines, ") {
		t.Errorf("summary: %q", out)
	}
	for _, want := range []string{
		drop + `:3: prefix /7 is broader than /8 (this source does not allow broad prefixes): "10.0.0.0/7 ; too broad"`,
		local + `:3: invalid address: unable to parse IP: "bogus"`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if got, want := table(), "1.10.16.0/20\n192.0.2.7\n192.0.2.8\n2001:db8::/48\n"; got != want {
		// 192.0.2.7 and .8 merge into one range, but no prefix covers
		// exactly both: pf gets two addresses.
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}

	// A missing list file fails before the table is touched.
	_, errOut, code = run("", "apply", "--backend", "pf", "--pfctl", pfctl, "--file", filepath.Join(dir, "absent.txt"))
	if code != 1 || !strings.Contains(errOut, "absent.txt") || table() == "" {
		t.Errorf("missing file: exit %d, %q, table %q", code, errOut, table())
	}
	// Usage errors exit 2.
	for _, args := range [][]string{
		{"apply"},
		{"apply", "--backend", "iptables", "--file", drop},
		{"apply", "--file", drop, "--allow", "not-an-address"},
		{"apply", "--nope"},
		{"flush", "extra"},
	} {
		if _, errOut, code := run("", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
	// --help describes the verb and exits 0.
	for _, verb := range []string{"apply", "flush"} {
		_, errOut, code := run("", verb, "--help")
		if code != 0 || !strings.Contains(errOut, "usage: blocklist-agent "+verb) || !strings.Contains(errOut, "-backend") {
			t.Errorf("%s --help: exit %d\n%s", verb, code, errOut)
		}
	}

	out, errOut, code = run("", "flush", "--backend", "pf", "--pfctl", pfctl)
	if code != 0 || table() != "" || !strings.Contains(out, "pf:") {
		t.Errorf("flush: exit %d %q %q, table %q", code, out, errOut, table())
	}
}
