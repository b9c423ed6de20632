package operator

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/test/testenv"
)

// shippedUnits are the systemd service units under examples/ (the Ansible
// roles template their own from these).
func shippedUnits(t *testing.T) []string {
	t.Helper()
	var units []string
	filepath.WalkDir(examplesDir(), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "ansible" {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".service") {
			units = append(units, p)
		}
		return nil
	})
	if len(units) < 8 {
		t.Fatalf("found %d units under examples/: %v", len(units), units)
	}
	return units
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// TestUnitsHardened scores every shipped unit with systemd-analyze
// security --offline: each must be at most 2.0 ("OK"), and the analysis
// must not warn about the unit file itself.
func TestUnitsHardened(t *testing.T) {
	sa := testenv.Binary(t, "systemd-analyze")
	for _, u := range shippedUnits(t) {
		out, err := exec.Command(sa, "security", "--offline=true", "--no-pager", u).CombinedOutput()
		m := exposureRE.FindSubmatch(out)
		if m == nil {
			t.Errorf("%s: systemd-analyze security gave no score (%v):\n%s", u, err, out)
			continue
		}
		score, _ := strconv.ParseFloat(string(m[1]), 64)
		if score > 2.0 {
			t.Errorf("%s: exposure %.1f > 2.0; what is still open:\n%s", u, score, failing(out))
		}
		// Unknown or misspelled settings are warnings in the same output.
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, u) && (strings.Contains(line, "Unknown") || strings.Contains(line, "Failed") || strings.Contains(line, "ignoring")) {
				t.Errorf("%s: %s", u, line)
			}
		}
		// verify also wants the binaries installed; only its complaints
		// about the unit's syntax matter here.
		out, _ = exec.Command(sa, "verify", "--man=no", u).CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "Unknown key") || strings.Contains(line, "Unknown section") || strings.Contains(line, "Invalid") || strings.Contains(line, "Failed to parse") {
				t.Errorf("%s: %s", u, line)
			}
		}
	}
}

func failing(out []byte) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "✗") {
			b.WriteString("  " + sc.Text() + "\n")
		}
	}
	return b.String()
}

// TestSysusersTmpfiles creates the service users and directories in a
// scratch root with the real systemd-sysusers and systemd-tmpfiles, and
// checks every User= of the shipped units exists there, and every
// directory the README's path table names is created with its owner.
func TestSysusersTmpfiles(t *testing.T) {
	sysusers := testenv.Binary(t, "systemd-sysusers")
	tmpfiles := testenv.Binary(t, "systemd-tmpfiles")
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	dir := filepath.Join(examplesDir(), "systemd")
	if out, err := exec.Command(sysusers, "--root="+root, filepath.Join(dir, "rampart.sysusers")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	out, err := exec.Command(tmpfiles, "--create", "--root="+root, filepath.Join(dir, "rampart.tmpfiles")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc", "group"))
	has := func(db []byte, name string) bool {
		return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:`).Match(db)
	}
	for _, u := range shippedUnits(t) {
		unit, _ := os.ReadFile(u)
		for _, m := range regexp.MustCompile(`(?m)^(User|Group|SupplementaryGroups)=(.+)$`).FindAllSubmatch(unit, -1) {
			for _, name := range strings.Fields(string(m[2])) {
				switch {
				case string(m[1]) == "User" && !has(passwd, name):
					t.Errorf("%s: User=%s is not created by rampart.sysusers", u, name)
				case string(m[1]) != "User" && strings.HasPrefix(name, "rampart") && !has(group, name):
					t.Errorf("%s: %s=%s is not created by rampart.sysusers", u, m[1], name)
				}
			}
		}
	}
	for _, d := range []string{"/etc/rampart/tls", "/etc/rampart/pki", "/var/lib/rampart/bastion", "/var/log/rampart/bastion",
		"/var/lib/rampart/blocklistd", "/var/lib/rampart/blocklist-agent", "/var/lib/rampart/acme", "/var/lib/prometheus/node-exporter"} {
		if st, err := os.Stat(filepath.Join(root, d)); err != nil || !st.IsDir() {
			t.Errorf("rampart.tmpfiles does not create %s: %v", d, err)
		}
	}
}
