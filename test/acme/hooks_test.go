package acme_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/providers/dns"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/pkg/hook"
	"github.com/rampart-sec/rampart/test/testenv"
)

// recordHook is a deploy hook that records, in a numbered directory under
// its first argument, what it was given (arguments, RAMPART_ACME_*
// variables, the whole environment) and what it found on disk: the
// certificate's fingerprint as openssl computes it, and copies of every
// file it was pointed at plus the stable path given as second argument.
const recordHook = `#!/bin/sh
set -eu
rec=$1
n=$(( $(cat "$rec/count" 2>/dev/null || echo 0) + 1 ))
d=$rec/$n
mkdir "$d"
echo "$#" > "$d/argc"
for a in "$@"; do printf '%s\n' "$a"; done > "$d/args"
env | grep '^RAMPART_ACME_' | sort > "$d/env"
env > "$d/environ"
openssl x509 -noout -fingerprint -sha256 -in "$RAMPART_ACME_CERT" > "$d/fingerprint"
cp "$RAMPART_ACME_KEY" "$d/key"
cp "$RAMPART_ACME_CERT" "$d/cert"
cp "$RAMPART_ACME_CHAIN" "$d/chain"
cp "$RAMPART_ACME_FULLCHAIN" "$d/fullchain"
cp "$RAMPART_ACME_COMBINED" "$d/combined"
ls "$RAMPART_ACME_DIR" > "$d/dir"
cat "$2" > "$d/link.crt"
echo "$n" > "$rec/count"
echo "record $RAMPART_ACME_NAME" >> "$rec/order"
`

// secondHook runs after recordHook and exits with the status written in
// $1/exit (0 when absent), complaining on stderr as nginx -t would.
const secondHook = `#!/bin/sh
echo "second $RAMPART_ACME_NAME" >> "$1/order"
status=$(cat "$1/exit" 2>/dev/null || echo 0)
if [ "$status" != 0 ]; then
	echo "nginx: [emerg] cannot load certificate: simulated failure" >&2
fi
exit "$status"
`

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// fingerprint is the SHA-256 of a certificate's DER, as openssl prints it
// with -fingerprint -sha256 (upper-case hex pairs joined by colons).
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

// hookRecord is what one invocation of recordHook left.
type hookRecord struct {
	dir string
}

func (r hookRecord) read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hookCount(t *testing.T, rec string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rec, "count"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkRecord checks that the hook's n-th run saw the certificate now on
// disk, through every variable and the stable path, and returns the leaf
// it saw.
func checkRecord(t *testing.T, rec string, n int, outDir, link string) *x509.Certificate {
	t.Helper()
	r := hookRecord{filepath.Join(rec, strconv.Itoa(n))}
	cur := filepath.Join(outDir, "current")
	onDisk, err := os.ReadFile(filepath.Join(cur, acme.FileFullChain))
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafFile(t, filepath.Join(cur, acme.FileCert))
	if got, want := strings.TrimSpace(string(r.read(t, "fingerprint"))), "sha256 Fingerprint="+fingerprint(leaf); !strings.EqualFold(got, want) {
		t.Fatalf("hook run %d: openssl saw %s, the certificate on disk is %s", n, got, want)
	}
	key, full := r.read(t, "key"), r.read(t, "fullchain")
	if !bytes.Equal(full, onDisk) || !bytes.Equal(r.read(t, "link.crt"), onDisk) {
		t.Fatalf("hook run %d: the full chain it read differs from the one on disk", n)
	}
	if _, err := tls.X509KeyPair(full, key); err != nil {
		t.Fatalf("hook run %d: key and chain it read do not match: %v", n, err)
	}
	if !bytes.Equal(append(r.read(t, "cert"), r.read(t, "chain")...), full) {
		t.Fatalf("hook run %d: cert + chain != fullchain", n)
	}
	if !bytes.Equal(r.read(t, "combined"), append(key, full...)) {
		t.Fatalf("hook run %d: combined != key + fullchain", n)
	}
	if got := strings.Fields(string(r.read(t, "dir"))); strings.Join(got, " ") != "cert.pem chain.pem combined.pem fullchain.pem privkey.pem" {
		t.Fatalf("hook run %d: RAMPART_ACME_DIR held %v", n, got)
	}
	return leaf
}

// Deploy hooks, as acme/README.md describes them: run in order, once per
// renewed certificate, only after the new files are in place, with the
// RAMPART_ACME_* variables; not on a run that renews nothing; a failing
// hook fails the run without undoing the certificate and is retried by
// the next run without a new order.
func TestDeployHooks(t *testing.T) {
	t.Parallel()
	testenv.Binary(t, "openssl")
	h := newHarness(t, testenv.PebbleOptions{})
	rec := filepath.Join(h.dir, "rec")
	os.Mkdir(rec, 0o755)
	record, second := filepath.Join(h.dir, "record.sh"), filepath.Join(h.dir, "second.sh")
	writeScript(t, record, recordHook)
	writeScript(t, second, secondHook)
	links := filepath.Join(h.dir, "links")
	outDir := filepath.Join(h.dir, "state", "certs", "site")
	link := filepath.Join(links, "site.crt")
	domains := []string{"hooks.example.com", "www.hooks.example.com"}
	cfg := h.loadYAML(h.header("") + fmt.Sprintf(`  - name: site
    domains: [%s]
    challenge: {http01: {address: 127.0.0.1, port: %d}}
    output: {key: %q, fullchain: %q}
    deploy_hooks:
      - '%s %s %s "two words"'
      - '%s %s'
      - 'echo "third $RAMPART_ACME_NAME" >> %s/order'
`, strings.Join(domains, ", "), h.p.HTTPPort, filepath.Join(links, "site.key"), link, record, rec, link, second, rec, rec))
	now := time.Now()
	wantOrder := "record site\nsecond site\nthird site\n"

	// 1. Issued from nothing: both hooks ran once, in order, and the first
	// saw the certificate that is on disk, with the documented variables
	// and exactly the arguments of its command line.
	run := h.runWith(cfg, now, nil)
	if r := result(t, run.sum, "site"); r.Action != acme.Renewed {
		t.Fatalf("first run: %+v", r)
	}
	if n := hookCount(t, rec); n != 1 {
		t.Fatalf("record hook ran %d times, want 1", n)
	}
	if order, _ := os.ReadFile(filepath.Join(rec, "order")); string(order) != wantOrder {
		t.Fatalf("hooks ran as %q, want %q", order, wantOrder)
	}
	first := checkRecord(t, rec, 1, outDir, link)
	r1 := hookRecord{filepath.Join(rec, "1")}
	if got := string(r1.read(t, "args")); got != rec+"\n"+link+"\ntwo words\n" {
		t.Fatalf("hook arguments %q", got)
	}
	cur := filepath.Join(outDir, "current")
	wantEnv := strings.Join([]string{
		"RAMPART_ACME_CERT=" + filepath.Join(cur, "cert.pem"),
		"RAMPART_ACME_CHAIN=" + filepath.Join(cur, "chain.pem"),
		"RAMPART_ACME_COMBINED=" + filepath.Join(cur, "combined.pem"),
		"RAMPART_ACME_DIR=" + cur,
		"RAMPART_ACME_DOMAINS=" + strings.Join(domains, " "),
		"RAMPART_ACME_FULLCHAIN=" + filepath.Join(cur, "fullchain.pem"),
		"RAMPART_ACME_KEY=" + filepath.Join(cur, "privkey.pem"),
		"RAMPART_ACME_NAME=site",
	}, "\n") + "\n"
	if got := string(r1.read(t, "env")); got != wantEnv {
		t.Fatalf("hook environment:\n%s\nwant:\n%s", got, wantEnv)
	}

	// 2. Nothing due: no request, no hook.
	h.rec.n.Store(0)
	run = h.runWith(cfg, now.Add(time.Minute), nil)
	if r := result(t, run.sum, "site"); r.Action != acme.NotDue || h.rec.n.Load() != 0 {
		t.Fatalf("no-op run: %+v, %d requests", r, h.rec.n.Load())
	}
	if n := hookCount(t, rec); n != 1 {
		t.Fatalf("a run that renewed nothing ran the hook (%d runs)", n)
	}

	// 3. A renewal: the hook sees the new certificate, not the old one.
	run = h.runWith(cfg, now.Add(2*time.Minute), nil, "site")
	if r := result(t, run.sum, "site"); r.Action != acme.Renewed {
		t.Fatalf("forced renewal: %+v", r)
	}
	if n := hookCount(t, rec); n != 2 {
		t.Fatalf("record hook ran %d times after the renewal, want 2", n)
	}
	renewed := checkRecord(t, rec, 2, outDir, link)
	if fingerprint(renewed) == fingerprint(first) {
		t.Fatal("the renewal did not change the certificate the hook saw")
	}

	// 4. The second hook fails: the run fails and says so, the log has the
	// hook's output, and the new certificate stays in place.
	os.WriteFile(filepath.Join(rec, "exit"), []byte("7\n"), 0o644)
	run = h.runWith(cfg, now.Add(3*time.Minute), nil, "site")
	r := result(t, run.sum, "site")
	if r.Action != acme.Failed || run.sum.Failed() != 1 || r.Err == nil || !strings.Contains(r.Err.Error(), "exit status 7") {
		t.Fatalf("failing hook: %+v (failed %d)", r, run.sum.Failed())
	}
	if !strings.Contains(run.out, "deploy hook failed") || !strings.Contains(run.out, second) {
		t.Fatalf("summary does not report the hook:\n%s", run.out)
	}
	if !strings.Contains(run.log, `msg="hook failed"`) || !strings.Contains(run.log, "simulated failure") {
		t.Fatalf("log lacks the failed hook and its output:\n%s", run.log)
	}
	// The failed hook stopped the ones after it.
	if order, _ := os.ReadFile(filepath.Join(rec, "order")); string(order) != wantOrder+wantOrder+"record site\nsecond site\n" {
		t.Fatalf("hooks ran as %q", order)
	}
	afterFail := checkRecord(t, rec, 3, outDir, link)
	if fingerprint(afterFail) == fingerprint(renewed) {
		t.Fatal("the run with the failing hook did not install its new certificate")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(h.p.Root(t))
	if got := checkPair(t, filepath.Join(links, "site.key"), link, roots, domains); fingerprint(got) != fingerprint(afterFail) {
		t.Fatal("a failed hook undid the new certificate")
	}
	st, err := acme.LoadState(cfg.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Certificates["site"].HookPending {
		t.Fatal("state does not remember the failed hook")
	}
	if got := metric(t, h, `rampart_acme_deploy_hook_pending{name="site"}`); got != 1 {
		t.Fatalf("rampart_acme_deploy_hook_pending after the failed hook: %v, want 1", got)
	}
	if got := metric(t, h, `rampart_acme_certificate_expiry_timestamp_seconds{name="site"}`); got != float64(afterFail.NotAfter.Unix()) {
		t.Fatalf("expiry metric after the failed hook: %v, want the new certificate's %d", got, afterFail.NotAfter.Unix())
	}

	// 5. The next run retries the owed hooks without asking the CA: the
	// record hook already succeeded for this certificate, so only the
	// failed one and those after it run. The run fails while the hook
	// does; once it succeeds, the run is clean and the hooks stop.
	orderBefore, _ := os.ReadFile(filepath.Join(rec, "order"))
	for i, status := range []string{"7", "0"} {
		os.WriteFile(filepath.Join(rec, "exit"), []byte(status+"\n"), 0o644)
		h.rec.n.Store(0)
		run = h.runWith(cfg, now.Add(time.Duration(4+i)*time.Minute), nil)
		r := result(t, run.sum, "site")
		if h.rec.n.Load() != 0 {
			t.Fatalf("hook retry %d made %d requests to the CA", i, h.rec.n.Load())
		}
		if want := map[string]acme.Action{"7": acme.Failed, "0": acme.NotDue}[status]; r.Action != want {
			t.Fatalf("hook retry with exit %s: %+v, want %s", status, r, want)
		}
		if n := hookCount(t, rec); n != 3 {
			t.Fatalf("hook retry %d: the record hook, done for this certificate, ran again (%d runs)", i, n)
		}
	}
	if order, _ := os.ReadFile(filepath.Join(rec, "order")); string(order) != string(orderBefore)+"second site\nsecond site\nthird site\n" {
		t.Fatalf("retries ran hooks as %q", strings.TrimPrefix(string(order), string(orderBefore)))
	}
	st, _ = acme.LoadState(cfg.StatePath())
	if st.Certificates["site"].HookPending {
		t.Fatal("hook still pending after it succeeded")
	}
	if got := metric(t, h, `rampart_acme_deploy_hook_pending{name="site"}`); got != 0 {
		t.Fatalf("rampart_acme_deploy_hook_pending after the hook succeeded: %v, want 0", got)
	}
	run = h.runWith(cfg, now.Add(6*time.Minute), nil)
	if n := hookCount(t, rec); n != 3 || run.sum.Failed() != 0 {
		t.Fatalf("after the hooks succeeded: %d hook runs, %d failed", n, run.sum.Failed())
	}
}

// metric reads one series from the run's Prometheus textfile.
func metric(t *testing.T, h *harness, series string) float64 {
	t.Helper()
	prom, err := os.ReadFile(filepath.Join(h.dir, "acme.prom"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(prom), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics textfile:\n%s", series, prom)
	return 0
}

// procGone reports whether pid has exited (a zombie waiting for its
// reaper counts as gone: it runs no more).
func procGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) STATE ...; comm may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// syscallKill ends a process the hook left behind, so a failing test
// leaves nothing running.
func syscallKill(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

// A hook that outlives hook_timeout is killed with everything it started
// (pkg/hook kills the process group), the run fails with the timeout, and
// the certificate it was deploying stays in place.
func TestDeployHookTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testenv.PebbleOptions{})
	pids := filepath.Join(h.dir, "pids")
	slow := filepath.Join(h.dir, "slow.sh")
	// The hook starts a child and a grandchild, then blocks like a hung
	// "systemctl reload".
	writeScript(t, slow, `#!/bin/sh
echo $$ > "$1/shell"
sleep 3600 &
echo $! > "$1/child"
sh -c 'sleep 3600 & echo $! > "$1/grandchild"; wait' grandparent "$1" &
while [ ! -s "$1/grandchild" ]; do sleep 0.05; done
echo started > "$1/ready"
wait
`)
	os.Mkdir(pids, 0o755)
	links := filepath.Join(h.dir, "links")
	cfg := h.loadYAML(h.header("hook_timeout: 2s\n") + fmt.Sprintf(`  - name: slow
    domains: [slow.example.com]
    challenge: {http01: {address: 127.0.0.1, port: %d}}
    output: {key: %q, fullchain: %q}
    deploy_hooks: ['%s %s']
`, h.p.HTTPPort, filepath.Join(links, "slow.key"), filepath.Join(links, "slow.crt"), slow, pids))

	run := h.runWith(cfg, time.Now(), nil)
	r := result(t, run.sum, "slow")
	if r.Action != acme.Failed || !errors.Is(r.Err, hook.ErrTimeout) {
		t.Fatalf("hook past its timeout: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(pids, "ready")); err != nil {
		t.Fatalf("the hook did not get to start its children: %v", err)
	}
	for _, name := range []string{"shell", "child", "grandchild"} {
		b, err := os.ReadFile(filepath.Join(pids, name))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		// SIGKILL is sent when the timeout fires; give the kernel a
		// bounded moment to finish each process off.
		for deadline := time.Now().Add(10 * time.Second); !procGone(pid) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if !procGone(pid) {
			syscallKill(pid)
			t.Fatalf("the hook's %s (pid %d) outlived the timeout", name, pid)
		}
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(h.p.Root(t))
	checkPair(t, filepath.Join(links, "slow.key"), filepath.Join(links, "slow.crt"), roots, []string{"slow.example.com"})
	if !strings.Contains(run.log, "hook timed out") {
		t.Fatalf("log does not say the hook timed out:\n%s", run.log)
	}
}

// acme/README.md: a dns01 certificate's env "is set only while the provider
// is built, so [it] never reaches hooks". Here another certificate's hook
// starts exactly while the provider is being built: the DNS provider
// function waits for that hook before it returns.
//
// Not parallel: lego keeps one DNS resolver list per process, and
// TestRenewAgainstPebble points it at its own challtestsrv. Sequential tests
// finish before parallel ones run.
func TestProviderEnvNeverReachesHooks(t *testing.T) {
	h := newHarness(t, testenv.PebbleOptions{})
	const secret = "provider-secret-4f1d"
	envFile := filepath.Join(h.dir, "token")
	os.WriteFile(envFile, []byte(secret), 0o600)
	rec := filepath.Join(h.dir, "rec")
	os.Mkdir(rec, 0o755)
	cfg := h.loadYAML(h.header("") + fmt.Sprintf(`  - name: web
    domains: [web.env.example.com]
    challenge: {http01: {address: 127.0.0.1, port: %d}}
    deploy_hooks: ['env > %s/web.env']
  - name: dns
    domains: [dns.env.example.com]
    challenge:
      dns01:
        provider: httpreq
        env: {HTTPREQ_ENDPOINT: %q, HTTPREQ_PROPAGATION_TIMEOUT: "20", HTTPREQ_POLLING_INTERVAL: "1", RAMPART_TEST_PROVIDER_SECRET: %q}
        env_files: {RAMPART_TEST_TOKEN: %q}
        resolvers: [%q]
        skip_authoritative_check: true
    deploy_hooks: ['env > %s/dns.env']
`, h.p.HTTPPort, rec, h.p.HTTPReqEndpoint, secret, envFile, h.p.DNSAddr, rec))

	webEnv := filepath.Join(rec, "web.env")
	var overlapped bool
	provider := func(name string) (challenge.Provider, error) {
		if os.Getenv("RAMPART_TEST_PROVIDER_SECRET") != secret {
			return nil, errors.New("the provider's variables are not set while it is built")
		}
		// web's issuance takes seconds (lego polls after 5s); this runs
		// at the start of the run, so web's hook starts while we wait.
		_, err := os.Stat(webEnv)
		overlapped = err != nil
		for deadline := time.Now().Add(time.Minute); err != nil && time.Now().Before(deadline); _, err = os.Stat(webEnv) {
			time.Sleep(20 * time.Millisecond)
		}
		// The hook's shell exists once its redirection made the file: its
		// environment is fixed.
		return dns.NewDNSChallengeProviderByName(name)
	}
	run := h.runWith(cfg, time.Now(), provider)
	for _, name := range []string{"web", "dns"} {
		if r := result(t, run.sum, name); r.Action != acme.Renewed {
			t.Fatalf("%s: %+v", name, r)
		}
	}
	if !overlapped {
		t.Fatal("web's hook ran before the dns provider was built; the test proves nothing")
	}
	for _, name := range []string{"web.env", "dns.env"} {
		env, err := os.ReadFile(filepath.Join(rec, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{secret, "RAMPART_TEST_TOKEN_FILE=" + envFile, "HTTPREQ_ENDPOINT=" + h.p.HTTPReqEndpoint} {
			if strings.Contains(string(env), leak) {
				t.Errorf("%s: a hook's environment holds the dns01 provider's %q", name, leak)
			}
		}
	}
}
