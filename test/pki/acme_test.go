package pki_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// acmeRig is `pki serve` with ACME on, inside a network namespace whose
// /etc/hosts (ip netns exec bind-mounts /etc/netns/NAME/hosts) maps the
// test's names to 127.0.0.1: the CA validates http-01 on port 80 and
// tls-alpn-01 on 443 of that namespace's loopback, and nothing outside it
// is touched.
type acmeRig struct {
	host      *testenv.Host
	bin       string
	dir, cfg  string
	url, root string
	directory string
	serve     *exec.Cmd
	serveOut  *syncBuffer
	fp        string
}

const acmeNames = "ca.acme.test web.acme.test caddy.acme.test renew.acme.test eab.acme.test outside.example"

// newACMERig starts the CA; dsn "" is bbolt, otherwise the CA's
// PostgreSQL (reached through its unix socket: the namespace has its own
// loopback).
func newACMERig(t *testing.T, dsn string, edit func(string) string) *acmeRig {
	t.Helper()
	testenv.RequireRoot(t)
	h := testenv.NewHost(t)
	etc := filepath.Join("/etc/netns", h.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	hosts := "127.0.0.1 localhost " + acmeNames + "\n::1 localhost\n"
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	// DNS inside the namespace is the test's pebble-challtestsrv (dns-01).
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &acmeRig{host: h, bin: pkiBinary(t), dir: t.TempDir()}
	r.cfg = filepath.Join(r.dir, "pki.yaml")
	initArgs := []string{"init", "--dir", r.dir, "--listen", "127.0.0.1:9443", "--dns", "ca.acme.test"}
	if dsn != "" {
		initArgs = append(initArgs, "--store-dsn", dsn)
	}
	out := run(t, nil, r.bin, initArgs...)
	m := regexp.MustCompile(`root fingerprint: ([0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pki init: %q", out)
	}
	r.fp = m[1]
	b, err := os.ReadFile(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	for _, kv := range [][2]string{
		{"acme:\n    enabled: false", "acme:\n    enabled: true"},
		{"dns: []", "dns: [\"*.acme.test\"]"},
	} {
		if !strings.Contains(y, kv[0]) {
			t.Fatalf("pki init wrote no %q:\n%s", kv[0], y)
		}
		y = strings.Replace(y, kv[0], kv[1], 1)
	}
	if edit != nil {
		y = edit(y)
	}
	if err := os.WriteFile(r.cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	r.url = "https://ca.acme.test:9443"
	r.directory = r.url + "/acme/acme/directory"
	r.root = filepath.Join(r.dir, "root_ca.crt")
	r.serveOut = &syncBuffer{}
	r.serve = h.Command(r.bin, "serve", "--config", r.cfg)
	r.serve.Stdout, r.serve.Stderr = r.serveOut, r.serveOut
	if err := r.serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.serve.Process.Kill(); _ = r.serve.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := h.Run("curl", "-sf", "--cacert", r.root, r.directory); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pki serve: no ACME directory at %s:\n%s", r.directory, r.serveOut.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return r
}

func (r *acmeRig) run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := r.host.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// wantLeaf checks a PEM chain from the internal ACME endpoint: names,
// lifetime, and a chain that verifies against the CA's root.
func (r *acmeRig) wantLeaf(t *testing.T, chainPEM []byte, name string, life time.Duration) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("no certificate in %q", chainPEM)
	}
	rootPEM, _ := os.ReadFile(r.root)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name}); err != nil {
		t.Fatalf("ACME certificate for %s: %v", name, err)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < life-2*time.Minute || got > life+2*time.Minute {
		t.Errorf("ACME certificate lifetime %s, want %s", got, life)
	}
	return leaf
}

// TestACMECertbot: certbot (Debian's) obtains a certificate for an
// internal name from pki serve's ACME directory with --standalone
// http-01, renews it, and is refused a name outside the CA's policy. The
// certificate is 24 h (the default lifetime), verifies against the root,
// and pki list names it with the acme provisioner.
func TestACMECertbot(t *testing.T) {
	t.Parallel() // mostly waiting (client start-up, CRL ageing): overlap with the other waiters
	certbot := testenv.Binary(t, "certbot")
	r := newACMERig(t, "", nil)
	work := t.TempDir()
	env := []string{"REQUESTS_CA_BUNDLE=" + r.root}
	args := func(extra ...string) []string {
		return append([]string{"certonly", "--standalone", "--non-interactive", "--agree-tos",
			"--register-unsafely-without-email", "--server", r.directory,
			"--config-dir", filepath.Join(work, "etc"), "--work-dir", filepath.Join(work, "var"),
			"--logs-dir", filepath.Join(work, "log"), "--preferred-challenges", "http"}, extra...)
	}
	out, err := r.run(t, env, certbot, args("-d", "web.acme.test")...)
	if err != nil {
		t.Fatalf("certbot: %v\n%s\npki serve:\n%s", err, out, r.serveOut.String())
	}
	live := filepath.Join(work, "etc", "live", "web.acme.test")
	chain, err := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := r.wantLeaf(t, chain, "web.acme.test", 24*time.Hour)

	// A renewal (forced: it is not due) gets a new serial.
	out, err = r.run(t, env, certbot, args("-d", "web.acme.test", "--force-renewal")...)
	if err != nil {
		t.Fatalf("certbot renewal: %v\n%s", err, out)
	}
	chain, _ = os.ReadFile(filepath.Join(live, "fullchain.pem"))
	if renewed := r.wantLeaf(t, chain, "web.acme.test", 24*time.Hour); renewed.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("certbot --force-renewal: same serial")
	}

	// Outside the name policy: refused when the order is created.
	out, err = r.run(t, env, certbot, args("-d", "outside.example")...)
	if err == nil {
		t.Fatalf("certbot obtained outside.example, outside the policy:\n%s", out)
	}
	// certbot 2.1 crashes on the problem document (AttributeError) but
	// logs the CA's answer.
	logB, _ := os.ReadFile(filepath.Join(work, "log", "letsencrypt.log"))
	if i := bytes.Index(logB, []byte("rejectedIdentifier")); i < 0 || !bytes.Contains(logB, []byte("outside.example")) {
		t.Errorf("certbot's log does not hold the CA's rejectedIdentifier answer:\n%s", out)
		if j := bytes.LastIndex(logB, []byte("new-order")); j >= 0 {
			t.Logf("%s", logB[j:min(len(logB), j+3000)])
		}
	}

	// The audit log has one line per ACME issuance.
	if audit := readFile(t, filepath.Join(r.dir, "audit.log")); strings.Count(audit, `"op":"acme-sign"`) != 2 ||
		!strings.Contains(audit, `"serial":"`+leaf.SerialNumber.String()+`"`) {
		t.Errorf("audit log after two ACME issuances:\n%s", audit)
	}

	// pki list sees what ACME issued.
	ls, err := r.run(t, nil, r.bin, "list", "--config", r.cfg, "--json", "--name", "web.acme.test")
	if err != nil {
		t.Fatalf("pki list: %v\n%s", err, ls)
	}
	if strings.Count(ls, `"provisioner": "acme"`) != 2 || !strings.Contains(ls, leaf.SerialNumber.String()) {
		t.Errorf("pki list after two ACME issuances:\n%s", ls)
	}
}

// TestACMECaddy: Debian's Caddy with acme_ca and acme_ca_root in its
// Caddyfile obtains a certificate for an internal name from pki serve by
// tls-alpn-01 (the only challenge this CA offers here: acme.challenges)
// and serves it; curl, trusting only the CA's root, gets the page.
func TestACMECaddy(t *testing.T) {
	t.Parallel() // mostly waiting (client start-up, CRL ageing): overlap with the other waiters
	caddy := testenv.Binary(t, "caddy")
	r := newACMERig(t, "", func(y string) string {
		return strings.Replace(y, "    challenges:\n        - http-01\n        - tls-alpn-01\n        - dns-01\n", "    challenges: [tls-alpn-01]\n", 1)
	})
	if !strings.Contains(readFile(t, r.cfg), "challenges: [tls-alpn-01]") {
		t.Fatalf("could not restrict acme.challenges:\n%s", readFile(t, r.cfg))
	}
	// The README's example parses.
	if out, err := exec.Command(caddy, "adapt", "--config", filepath.Join(testenv.ModuleRoot(), "examples", "pki", "acme", "Caddyfile"),
		"--adapter", "caddyfile").CombinedOutput(); err != nil {
		t.Errorf("caddy adapt examples/pki/acme/Caddyfile: %v\n%s", err, out)
	}
	work := t.TempDir()
	caddyfile := filepath.Join(work, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(fmt.Sprintf(`{
	admin off
	storage file_system %s
	acme_ca %s
	acme_ca_root %s
	skip_install_trust
}

caddy.acme.test {
	respond "hello from caddy"
}
`, filepath.Join(work, "data"), r.directory, r.root)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := r.host.Command(caddy, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+work, "XDG_DATA_HOME="+work, "XDG_CONFIG_HOME="+work)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(90 * time.Second)
	var page string
	for {
		page, _ = r.run(t, nil, "curl", "-sS", "--max-time", "5", "--cacert", r.root, "https://caddy.acme.test/")
		if page == "hello from caddy" || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if page != "hello from caddy" {
		t.Fatalf("curl https://caddy.acme.test/: %q\ncaddy:\n%s\npki serve:\n%s", page, out.String(), r.serveOut.String())
	}
	pemOut, err := r.run(t, nil, "sh", "-c", "openssl s_client -connect 127.0.0.1:443 -servername caddy.acme.test -showcerts </dev/null 2>/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	r.wantLeaf(t, []byte(pemOut), "caddy.acme.test", 24*time.Hour)
	if !strings.Contains(r.serveOut.String()+out.String(), "tls-alpn-01") {
		t.Logf("note: neither log names tls-alpn-01")
	}
}

// TestACMERenewDNS01 (the CA on PostgreSQL: step's ACME tables through
// pki's driver): Rampart's own acme-renew, with the internal CA as
// its directory (ca_bundle = the CA's root), obtains a certificate by
// dns-01: lego's exec provider sets the TXT record in a
// pebble-challtestsrv that is the namespace's DNS server, and pki serve
// validates through it. A second run finds nothing due (step-ca serves no
// ARI renewalInfo, so acme-renew falls back to its lifetime rule) and
// acme-renew check is happy.
func TestACMERenewDNS01(t *testing.T) {
	t.Parallel() // mostly waiting (client start-up, CRL ageing): overlap with the other waiters
	challtestsrv := testenv.Binary(t, "pebble-challtestsrv")
	pg := testenv.StartPostgres(t)
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	sockDSN := fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%s&sslmode=disable", pg.Dir, u.Port())
	r := newACMERig(t, sockDSN, nil)
	if !strings.Contains(readFile(t, r.cfg), "type: postgresql") {
		t.Fatalf("pki init --store-dsn did not configure PostgreSQL:\n%s", readFile(t, r.cfg))
	}
	work := t.TempDir()
	dns := r.host.Command(challtestsrv, "-dnsserver", "127.0.0.1:53", "-management", "127.0.0.1:8055",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	dnsOut := &syncBuffer{}
	dns.Stdout, dns.Stderr = dnsOut, dnsOut
	if err := dns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dns.Process.Kill(); _ = dns.Wait() })
	script := filepath.Join(work, "dns.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
# lego exec provider: present|cleanup FQDN VALUE
case "$1" in
present) curl -sf -X POST -d "{\"host\":\"$2\",\"value\":\"$3\"}" http://127.0.0.1:8055/set-txt ;;
cleanup) curl -sf -X POST -d "{\"host\":\"$2\"}" http://127.0.0.1:8055/clear-txt ;;
esac
`), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(work, "acme.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state_dir: %[1]s/state
accounts:
  internal:
    directory: %[2]s
    ca_bundle: %[3]s
certificates:
  - name: renew
    domains: [renew.acme.test]
    challenge:
      dns01:
        provider: exec
        env:
          EXEC_PATH: %[4]s
          EXEC_PROPAGATION_TIMEOUT: "30"
          EXEC_POLLING_INTERVAL: "1"
        resolvers: ["127.0.0.1:53"]
        skip_authoritative_check: true
    output:
      dir: %[1]s/out
`, work, r.directory, r.root, script)), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := testenv.BuildCommand(t, "acme-renew")
	if out, err := exec.Command(bin, "run", "--check", "--config", filepath.Join(testenv.ModuleRoot(), "examples", "pki", "acme", "acme-renew-internal.yaml")).CombinedOutput(); err != nil {
		t.Errorf("acme-renew run --check examples/pki/acme/acme-renew-internal.yaml: %v\n%s", err, out)
	}
	out, err := r.run(t, nil, bin, "run", "--config", cfg)
	if err != nil {
		t.Fatalf("acme-renew run: %v\n%s\npki serve:\n%s\nchalltestsrv:\n%s", err, out, r.serveOut.String(), dnsOut.String())
	}
	chain, err := os.ReadFile(filepath.Join(work, "out", "current", "fullchain.pem"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	leaf := r.wantLeaf(t, chain, "renew.acme.test", 24*time.Hour)
	if !strings.Contains(r.serveOut.String()+dnsOut.String(), "_acme-challenge.renew.acme.test") {
		t.Logf("note: no log names the TXT record")
	}
	out, err = r.run(t, nil, bin, "run", "--config", cfg)
	if err != nil {
		t.Fatalf("second acme-renew run: %v\n%s", err, out)
	}
	again, _ := os.ReadFile(filepath.Join(work, "out", "current", "fullchain.pem"))
	if r.wantLeaf(t, again, "renew.acme.test", 24*time.Hour).SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("second run renewed a certificate that was not due:\n%s", out)
	}
	if out, err := r.run(t, nil, bin, "check", "--config", cfg); err != nil {
		t.Errorf("acme-renew check: %v\n%s", err, out)
	}
}

// TestACMECertbotEAB: with acme.require_eab, certbot without a key is
// refused an account; with a key from `pki acme-eab` it obtains a
// certificate; the same key cannot open a second account.
func TestACMECertbotEAB(t *testing.T) {
	t.Parallel() // mostly waiting (client start-up, CRL ageing): overlap with the other waiters
	certbot := testenv.Binary(t, "certbot")
	r := newACMERig(t, "", func(y string) string { return strings.Replace(y, "require_eab: false", "require_eab: true", 1) })
	env := []string{"REQUESTS_CA_BUNDLE=" + r.root}
	certonly := func(work string, extra ...string) (string, error) {
		return r.run(t, env, certbot, append([]string{"certonly", "--standalone", "--non-interactive", "--agree-tos",
			"--register-unsafely-without-email", "--server", r.directory,
			"--config-dir", filepath.Join(work, "etc"), "--work-dir", filepath.Join(work, "var"),
			"--logs-dir", filepath.Join(work, "log"), "--preferred-challenges", "http", "-d", "eab.acme.test"}, extra...)...)
	}
	if out, err := certonly(t.TempDir()); err == nil {
		t.Fatalf("certbot without EAB got an account from a CA that requires it:\n%s", out)
	}
	out, err := r.run(t, nil, r.bin, "acme-eab", "web-frontend", "--config", r.cfg, "--json")
	if err != nil {
		t.Fatalf("pki acme-eab: %v\n%s", err, out)
	}
	var k struct{ KID, HMACKey, Reference string }
	if err := json.Unmarshal([]byte(out), &struct {
		KID     *string `json:"kid"`
		HMACKey *string `json:"hmac_key"`
		Ref     *string `json:"reference"`
	}{&k.KID, &k.HMACKey, &k.Reference}); err != nil || k.KID == "" || k.HMACKey == "" || k.Reference != "web-frontend" {
		t.Fatalf("pki acme-eab --json: %v %q", err, out)
	}
	if out, err := r.run(t, nil, r.bin, "acme-eab", "web-frontend", "--config", r.cfg); err == nil || !strings.Contains(out, "exists already") {
		t.Errorf("a second key of the same name: %v\n%s", err, out)
	}
	work := t.TempDir()
	if out, err := certonly(work, "--eab-kid", k.KID, "--eab-hmac-key", k.HMACKey); err != nil {
		t.Fatalf("certbot with EAB: %v\n%s\npki serve:\n%s", err, out, r.serveOut.String())
	}
	chain, err := os.ReadFile(filepath.Join(work, "etc", "live", "eab.acme.test", "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	r.wantLeaf(t, chain, "eab.acme.test", 24*time.Hour)
	if out, err := certonly(t.TempDir(), "--eab-kid", k.KID, "--eab-hmac-key", k.HMACKey); err == nil {
		t.Fatalf("one EAB key opened a second account:\n%s", out)
	}
}

// TestACMEStepCLI: the step CLI as an ACME client of pki serve (`step ca
// certificate --provisioner acme`, its own http-01 server on port 80).
func TestACMEStepCLI(t *testing.T) {
	t.Parallel() // mostly waiting
	step := testenv.Binary(t, "step")
	r := newACMERig(t, "", nil)
	work := t.TempDir()
	crt, key := filepath.Join(work, "web.crt"), filepath.Join(work, "web.key")
	start := time.Now()
	out, err := r.run(t, []string{"STEPPATH=" + t.TempDir()}, step, "ca", "certificate", "web.acme.test", crt, key,
		"--provisioner", "acme", "--ca-url", r.url, "--root", r.root, "--force")
	t.Logf("step ca certificate over ACME: %s", time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		t.Fatalf("step ca certificate --provisioner acme: %v\n%s\npki serve:\n%s", err, out, r.serveOut.String())
	}
	chain, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	r.wantLeaf(t, chain, "web.acme.test", 24*time.Hour)
}
