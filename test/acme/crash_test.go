package acme_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/test/testenv"
)

// binRun is one run of the acme-renew binary.
type binRun struct {
	code           int
	killed         bool // by SIGKILL
	stdout, stderr string
}

func runBinary(t *testing.T, bin string, env []string, args ...string) binRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := binRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		}
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return r
}

// fpHook appends "NAME FINGERPRINT" to a log when it has finished, the
// fingerprint being openssl's of the certificate the hook was pointed at.
const fpHook = `#!/bin/sh
set -eu
fp=$(openssl x509 -noout -fingerprint -sha256 -in "$RAMPART_ACME_CERT" | cut -d= -f2)
echo "$1 $fp" >> "$2"
`

// The crash-safety invariant of deploy hooks (acme/README.md "Crash
// safety"): acme-renew, built with the acmecrash tag, is killed with
// SIGKILL after each durable step of a forced renewal with two deploy
// hooks; then the ordinary next run. Whatever the step:
//   - key and chain behind the stable paths belong together, and the old
//     certificate is there exactly when the kill came before the switch;
//   - after the next run every hook ran for the certificate on disk, the
//     ones already recorded as done did not run again, and no hook ran
//     for a certificate that is not on disk; the one window where a hook
//     runs twice is "hook N ran" (it succeeded, the kill came before its
//     success was recorded): at least once, documented;
//   - nothing is pending, and a third run runs no hook.
func TestCrashAtEveryStepOwesExactlyTheHooks(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Binary(t, "openssl")
	p := testenv.StartPebble(t, testenv.PebbleOptions{})
	px := startACMEProxy(t, p)
	bin := acmeRenewBinary(t, "acmecrash")
	scripts := t.TempDir()
	hookSh := filepath.Join(scripts, "hook.sh")
	writeScript(t, hookSh, fpHook)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.Root(t))
	domains := []string{"crash.example.com"}

	setup := func(dir string) string {
		doc := fmt.Sprintf(`state_dir: %s/state
metrics_textfile: %s/acme.prom
accounts:
  pebble: {directory: %q, email: ops@example.com, ca_bundle: %q}
certificates:
  - name: site
    domains: [%s]
    challenge: {http01: {address: 127.0.0.1, port: %d}}
    output: {key: %s/links/site.key, fullchain: %s/links/site.crt}
    deploy_hooks:
      - '%s one %s/hooks.log'
      - '%s two %s/hooks.log'
`, dir, dir, px.DirectoryURL, px.CAFile, strings.Join(domains, ", "), p.HTTPPort, dir, dir, hookSh, dir, hookSh, dir)
		path := filepath.Join(dir, "acme.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// One issuance, copied into every case: each case then costs one order.
	tmpl := t.TempDir()
	if r := runBinary(t, bin, nil, "run", "--config", setup(tmpl)); r.code != 0 {
		t.Fatalf("first issuance: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	firstHooks := hookLines(t, filepath.Join(tmpl, "hooks.log"))
	if len(firstHooks) != 2 {
		t.Fatalf("first issuance ran hooks %v", firstHooks)
	}

	preSwap := map[string]bool{"deploy recorded": true, "mkdir": true}
	steps := []string{"deploy recorded", "mkdir"}
	for _, f := range []string{acme.FileKey, acme.FileCombined, acme.FileCert, acme.FileChain, acme.FileFullChain} {
		steps = append(steps, "write "+f)
		preSwap["write "+f] = true
	}
	steps = append(steps, "swap", "link "+acme.FileKey, "link "+acme.FileFullChain, "prune", "installed",
		"hook 1 started", "hook 1 ran", "hook 1 recorded", "hook 2 started", "hook 2 ran", "hook 2 recorded", "deployed")
	for _, step := range steps {
		t.Run(strings.ReplaceAll(step, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("cp", "-a", filepath.Join(tmpl, "state"), filepath.Join(tmpl, "hooks.log"), dir).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			os.Mkdir(filepath.Join(dir, "links"), 0o755)
			cur := filepath.Join(dir, "state", "certs", "site", "current")
			os.Symlink(filepath.Join(cur, acme.FileKey), filepath.Join(dir, "links", "site.key"))
			os.Symlink(filepath.Join(cur, acme.FileFullChain), filepath.Join(dir, "links", "site.crt"))
			cfg := setup(dir)
			key, crt := filepath.Join(dir, "links", "site.key"), filepath.Join(dir, "links", "site.crt")
			old := fingerprint(leafFile(t, crt))
			hooksLog := filepath.Join(dir, "hooks.log")

			r := runBinary(t, bin, []string{"RAMPART_ACME_CRASH_AT=" + step}, "run", "--config", cfg, "--force", "site")
			if !r.killed {
				t.Fatalf("not killed at %q: exit %d\n%s%s", step, r.code, r.stdout, r.stderr)
			}
			mid := fingerprint(checkPair(t, key, crt, roots, domains))
			if switched := mid != old; switched == preSwap[step] {
				t.Fatalf("killed at %q: new certificate on disk = %v", step, switched)
			}

			r = runBinary(t, bin, nil, "run", "--config", cfg)
			if r.code != 0 || !strings.Contains(r.stdout, "not due") {
				t.Fatalf("run after the kill at %q: exit %d\n%s%s", step, r.code, r.stdout, r.stderr)
			}
			if got := fingerprint(checkPair(t, key, crt, roots, domains)); got != mid {
				t.Fatalf("the run after the kill changed the certificate")
			}
			after := hookLines(t, hooksLog)[len(firstHooks):]
			counts := map[string]int{}
			for _, l := range after {
				name, fp, _ := strings.Cut(l, " ")
				if !strings.EqualFold(fp, mid) {
					t.Fatalf("killed at %q: hook %s ran for %s, which is not on disk (%s)", step, name, fp, mid)
				}
				counts[name]++
			}
			for i, name := range []string{"one", "two"} {
				want := 1
				switch {
				case preSwap[step]:
					want = 0 // the old certificate's hooks had all run
				case step == fmt.Sprintf("hook %d ran", i+1):
					want = 2 // ran, killed before its success was recorded
				}
				if counts[name] != want {
					t.Errorf("killed at %q: hook %s ran %d time(s) for the certificate on disk, want %d (log since the first issuance: %q)", step, name, counts[name], want, after)
				}
			}
			st, err := acme.LoadState(filepath.Join(dir, "state", "state.json"))
			if err != nil {
				t.Fatal(err)
			}
			if cs := st.Certificates["site"]; cs.HookPending || cs.Deploy != nil || !strings.EqualFold(cs.Deployed, strings.ReplaceAll(mid, ":", "")) {
				t.Fatalf("killed at %q: state after the next run: pending %v, deploy %+v, deployed %s", step, cs.HookPending, cs.Deploy, cs.Deployed)
			}
			r = runBinary(t, bin, nil, "run", "--config", cfg)
			if n := len(hookLines(t, hooksLog)); r.code != 0 || n != len(firstHooks)+len(after) {
				t.Fatalf("third run: exit %d, hooks ran again (%d lines)\n%s%s", r.code, n, r.stdout, r.stderr)
			}
		})
	}
}

func hookLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
