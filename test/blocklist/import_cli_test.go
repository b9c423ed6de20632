package blocklist_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// `blocklistd import` with the real binary: a CSV from standard input and
// a list file; a bad line refuses the whole import (naming file and line)
// unless --skip-invalid.
func TestImportBinary(t *testing.T) {
	bin := buildBlocklistd(t)
	p := newServerPKI(t)
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := filepath.Join(dir, "blocklistd.yaml")
	writeFleetFile(t, cfg, fmt.Sprintf(`listen: %s
tls: {cert: %s, key: %s, client_ca: %s}
store: {driver: bolt, path: %s}
cli: {cert: %s, key: %s}
`, listen, p.file("blocklistd.pem"), p.file("blocklistd-key.pem"), p.file("ca.pem"), filepath.Join(dir, "blocklistd.db"),
		p.file("admin.pem"), p.file("admin-key.pem")))
	daemon, _ := startDaemon(t, bin, cfg, listen)
	run := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--config", cfg)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("prefix,ttl,reason\n192.0.2.1,2h,scanner\n192.0.2.2,,\n", "import", "-", "--ttl", "1d")
	if err != nil || !strings.Contains(out, "imported 2 bans (0 skipped) in one commit") {
		t.Fatalf("import - (CSV): %v\n%s", err, out)
	}
	list := filepath.Join(dir, "drop.txt")
	writeFleetFile(t, list, "; a DROP-style list\n198.51.100.0/24 ; SBL1\n127.0.0.1\n203.0.113.7\n")
	if out, err := run("", "import", list); err == nil || !strings.Contains(out, "drop.txt:3:") || !strings.Contains(out, "nothing imported") {
		t.Fatalf("import of a list with a loopback line: %v\n%s", err, out)
	}
	if out, err := run("", "import", list, "--skip-invalid"); err != nil || !strings.Contains(out, "imported 2 bans (1 skipped)") || !strings.Contains(out, "skipped drop.txt:3:") {
		t.Fatalf("import --skip-invalid: %v\n%s", err, out)
	}
	out, err = run("", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.0.2.1/32", "scanner", "192.0.2.2/32", "imported from -", "198.51.100.0/24", "imported from drop.txt", "203.0.113.7/32"} {
		if !strings.Contains(out, want) {
			t.Fatalf("list lacks %q:\n%s", want, out)
		}
	}
	// TTLs: 2h from the CSV, the --ttl default (1d) for the line without.
	agent := &serverAgent{c: p.client(t, "https://"+listen, "agent")}
	agent.sync(t, time.Second)
	if len(agent.set) != 4 {
		t.Fatalf("agent holds %v", agent.list())
	}
	if out, err := run("", "list", "--json", "--prefix", "192.0.2.0/24"); err != nil || strings.Count(out, `"expires"`) != 2 {
		t.Fatalf("imported bans without expiry: %v\n%s", err, out)
	}
	stopDaemon(t, daemon)
}
