package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/acme"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func testConfig(dir string) string {
	return "state_dir: " + dir + "/state\naccounts:\n  le: {email: a@example.com}\ncertificates:\n  - domains: [www.example.com]\n    challenge: {http01: {port: 8402}}\n"
}

func TestMalformedConfigNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "acme.yaml", strings.Replace(testConfig(dir), "http01:", "htp01:", 1))
	for _, verb := range []string{"run", "list"} {
		var out, errb bytes.Buffer
		if code := Main([]string{verb, "--config", path}, &out, &errb); code != 1 {
			t.Fatalf("%s: exit %d, want 1", verb, code)
		}
		if want := path + `:6: unknown key "htp01" (did you mean "http01"?)`; !strings.Contains(errb.String(), want) {
			t.Fatalf("%s: stderr %q, want %q", verb, errb.String(), want)
		}
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"check", "--config", path}, &out, &errb); code != 3 || !strings.Contains(out.String(), "ACME UNKNOWN") {
		t.Fatalf("check on a broken config: exit %d, %q", code, out.String())
	}
}

func TestCheckMissingIsCritical(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "acme.yaml", testConfig(dir))
	var out, errb bytes.Buffer
	if code := Main([]string{"check", "--config", path}, &out, &errb); code != 2 || !strings.Contains(out.String(), "CRITICAL www.example.com: no certificate") {
		t.Fatalf("exit %d, %s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := Main([]string{"list", "--config", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), "no certificate on disk") {
		t.Fatalf("list: exit %d, %s%s", code, out.String(), errb.String())
	}
}

// A run that finds the lock taken exits 75 (EX_TEMPFAIL) without doing anything.
func TestRunLocked(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "acme.yaml", testConfig(dir))
	cfg, err := acme.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := cfg.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	var out, errb bytes.Buffer
	if code := Main([]string{"run", "--config", path}, &out, &errb); code != 75 || !strings.Contains(errb.String(), "holds the lock") {
		t.Fatalf("exit %d, %s", code, errb.String())
	}
	if _, err := os.Stat(cfg.StatePath()); err == nil {
		t.Fatal("a locked-out run wrote state")
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "acme-renew <command>") {
		t.Fatalf("exit %d, %s", code, errb.String())
	}
	if code := Main([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("unknown verb: exit %d", code)
	}
}
