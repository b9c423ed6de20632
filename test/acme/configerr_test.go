package acme_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/test/testenv"
)

// An operator's typo in a dns01 provider is a configuration error for
// list, check and run alike, naming file, line and what is missing, and
// it starts no backoff (issue 14: "list and check accept it, run fails
// with 'connect to the CA' and starts a 30-minute backoff").
func TestDNSProviderTypoIsAConfigError(t *testing.T) {
	bin := acmeRenewBinary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "acme.yaml")
	write := func(dns01 string) {
		doc := fmt.Sprintf(`state_dir: %s/state
accounts:
  le: {directory: "https://127.0.0.1:9/dir", email: ops@example.com}
certificates:
  - name: web
    domains: [www.example.com]
    challenge: {http01: {port: 8402}}
  - name: api
    domains: [api.example.com]
    challenge:
      dns01:
%s`, dir, dns01)
		if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, dns01 string
		want        []string
	}{
		{"unknown name", "        provider: cloudfare\n", []string{cfgPath + ":12:", `certificate "api"`, `dns01 provider "cloudfare"`, "unrecognized DNS provider: cloudfare"}},
		// httpreq needs HTTPREQ_ENDPOINT; lego names the missing variables.
		{"missing variable", "        provider: httpreq\n        env: {HTTPREQ_MODE: RAW}\n", []string{cfgPath + ":12:", "some credentials information are missing: HTTPREQ_ENDPOINT"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			write(tc.dns01)
			for _, verb := range []string{"list", "check", "run"} {
				r := runBinary(t, bin, []string{"HTTPREQ_ENDPOINT="}, verb, "--config", cfgPath)
				wantCode, msg := 1, r.stderr
				if verb == "check" {
					wantCode, msg = 3, r.stdout // Nagios UNKNOWN, on stdout
				}
				if r.code != wantCode {
					t.Errorf("%s: exit %d, want %d\n%s%s", verb, r.code, wantCode, r.stdout, r.stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%s: output lacks %q:\n%s", verb, w, msg)
					}
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "state", "state.json")); err == nil {
				t.Fatal("a config error wrote state (a backoff)")
			}
		})
	}
	// Fixed: list works again (no CA contacted).
	write("        provider: httpreq\n        env: {HTTPREQ_ENDPOINT: \"http://127.0.0.1:9\"}\n")
	if r := runBinary(t, bin, nil, "list", "--config", cfgPath); r.code != 0 {
		t.Fatalf("list after the fix: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A certificate whose order fails backs off; while it does, run exits 4
// (not 0: the unit's OnFailure= keeps alerting) and check says until when;
// fixing the certificate's config ends the backoff at once.
func TestBackoffExitStatusAndConfigChange(t *testing.T) {
	testenv.RequireRoot(t)
	p := testenv.StartPebble(t, testenv.PebbleOptions{})
	px := startACMEProxy(t, p)
	bin := acmeRenewBinary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "acme.yaml")
	write := func(domains string) {
		doc := fmt.Sprintf(`state_dir: %s/state
accounts:
  pebble: {directory: %q, email: ops@example.com, ca_bundle: %q}
certificates:
  - name: site
    domains: [%s]
    challenge: {http01: {address: 127.0.0.1, port: %d}}
`, dir, px.DirectoryURL, px.CAFile, domains, p.HTTPPort)
		if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The typo: a name the CA refuses.
	write("site.example.com, blocked-domain.example")
	r := runBinary(t, bin, nil, "run", "--config", cfgPath)
	if r.code != 1 || !strings.Contains(r.stdout, "FAILED") {
		t.Fatalf("refused order: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	orders := len(px.ordersSeen())
	r = runBinary(t, bin, nil, "run", "--config", cfgPath)
	if r.code != 4 || !strings.Contains(r.stdout, "BACKOFF") || !strings.Contains(r.stdout, "until") || len(px.ordersSeen()) != orders {
		t.Fatalf("run during the backoff: exit %d (want 4), %d new orders\n%s%s", r.code, len(px.ordersSeen())-orders, r.stdout, r.stderr)
	}
	r = runBinary(t, bin, nil, "check", "--config", cfgPath)
	if !strings.Contains(r.stdout, "backing off until") || r.code == 0 {
		t.Fatalf("check during the backoff: exit %d\n%s", r.code, r.stdout)
	}
	r = runBinary(t, bin, nil, "list", "--config", cfgPath)
	if !strings.Contains(r.stdout, "backing off") {
		t.Fatalf("list during the backoff:\n%s", r.stdout)
	}
	// The fix: the next run tries at once and succeeds.
	write("site.example.com")
	r = runBinary(t, bin, nil, "run", "--config", cfgPath)
	if r.code != 0 || !strings.Contains(r.stdout, "renewed") {
		t.Fatalf("run after fixing the config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBinary(t, bin, nil, "check", "--config", cfgPath)
	if r.code != 0 || strings.Contains(r.stdout, "backing off") {
		t.Fatalf("check after the fix: exit %d\n%s", r.code, r.stdout)
	}
}
