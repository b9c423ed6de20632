package pki_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/pemutil"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
	"github.com/rampart-sec/rampart/test/testenv"
)

// How far the CA is dated back, and how long ago the host's certificate
// expired: a host that slept over a weekend. step-ca verifies a renew
// token's x5c chain at the leaf's NotAfter minus a minute, so the
// intermediate must have existed then, as it would have for a real host.
// The CA is older than a year so that a certificate expired a year ago can
// be tried too.
const (
	caAge        = 400 * 24 * time.Hour
	expiredSince = 26 * time.Hour
)

// expiryCA is a CA created by ca.Init (what `pki init` runs) dated caAge in
// the past and served by the real `pki serve` binary.
type expiryCA struct {
	t        *testing.T
	bin      string
	dir      string
	cfgPath  string
	url      string
	fp       string
	inter    *x509.Certificate
	interKey crypto.Signer

	stop func()
	mu   sync.Mutex
	logs bytes.Buffer
}

// use makes t the test that c's helpers report to, until the returned
// function restores the previous one: subtests must not fail their
// parent (defer c.use(t)() first thing in each).
func (c *expiryCA) use(t *testing.T) (restore func()) {
	prev := c.t
	c.t = t
	return func() { c.t = prev }
}

func newExpiryCA(t *testing.T, bin, dsn string) *expiryCA {
	t.Helper()
	dir := t.TempDir()
	port := testenv.FreePort(t)
	res, err := ca.Init(dir, ca.InitOptions{
		Name:     "Expiry",
		Listen:   fmt.Sprintf("127.0.0.1:%d", port),
		DNSNames: []string{"localhost", "127.0.0.1"},
		StoreDSN: dsn,
		AuditLog: "audit.log",
		Now:      func() time.Time { return time.Now().Add(-caAge) },
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ca.LoadConfig(res.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Leaf.AllowRenewalAfterExpiry {
		t.Fatal("pki init did not write allow_renewal_after_expiry: true")
	}
	if !strings.Contains(readFile(t, res.ConfigPath), "\n    renewal_after_expiry_max: 30d\n") || cfg.RenewalAfterExpiryLimit() != 30*24*time.Hour {
		t.Fatalf("pki init did not write renewal_after_expiry_max: 30d (limit %s)", cfg.RenewalAfterExpiryLimit())
	}
	pw, err := client.ReadPassword(cfg.Path(cfg.PasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	k, err := pemutil.Read(cfg.Path(cfg.IntermediateKey), pemutil.WithPassword(pw))
	if err != nil {
		t.Fatal(err)
	}
	c := &expiryCA{t: t, bin: bin, dir: dir, cfgPath: res.ConfigPath, url: cfg.URL, fp: res.Fingerprint,
		inter: certOf(t, cfg.Path(cfg.IntermediateCert)), interKey: k.(crypto.Signer)}
	c.start()
	t.Cleanup(c.shutdown)
	return c
}

// start runs `pki serve` and waits for it to listen.
func (c *expiryCA) start() {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, c.bin, "serve", "--config", c.cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			c.mu.Lock()
			c.logs.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			if strings.Contains(sc.Text(), "pki: serving") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	c.stop = func() { cancel(); _ = cmd.Wait() }
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		c.shutdown()
		t.Fatalf("pki serve did not start:\n%s", c.log())
	}
}

func (c *expiryCA) shutdown() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

func (c *expiryCA) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

// allowRenewalAfterExpiry rewrites leaf.allow_renewal_after_expiry in
// pki.yaml and restarts `pki serve`.
func (c *expiryCA) allowRenewalAfterExpiry(allow bool) {
	t := c.t
	t.Helper()
	from, to := "allow_renewal_after_expiry: true", "allow_renewal_after_expiry: false"
	if allow {
		from, to = to, from
	}
	cfg := c.editConfig(from, to)
	if cfg.Leaf.AllowRenewalAfterExpiry != allow {
		t.Fatalf("pki.yaml after the edit: allow %v", cfg.Leaf.AllowRenewalAfterExpiry)
	}
}

// editConfig replaces from (once in pki.yaml) by to and restarts `pki serve`.
func (c *expiryCA) editConfig(from, to string) *ca.Config {
	t := c.t
	t.Helper()
	y := readFile(t, c.cfgPath)
	if strings.Count(y, from) != 1 {
		t.Fatalf("pki.yaml has no single %q:\n%s", from, y)
	}
	if err := os.WriteFile(c.cfgPath, []byte(strings.Replace(y, from, to, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ca.LoadConfig(c.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	c.shutdown()
	c.start()
	return cfg
}

// pki runs the binary and returns its combined output and exit status.
func (c *expiryCA) pki(args ...string) (string, int) {
	c.t.Helper()
	out, err := exec.Command(c.bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	c.t.Fatalf("pki %s: %v", strings.Join(args, " "), err)
	return "", -1
}

func (c *expiryCA) mustPKI(args ...string) string {
	c.t.Helper()
	out, code := c.pki(args...)
	if code != 0 {
		c.t.Fatalf("pki %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func (c *expiryCA) token(name string, sans ...string) string {
	args := []string{"token", name, "--config", c.cfgPath}
	for _, s := range sans {
		args = append(args, "--san", s)
	}
	return strings.TrimSpace(c.mustPKI(args...))
}

// host bootstraps a host directory with `pki bootstrap` (24h certificate).
func (c *expiryCA) host(name string) (string, *x509.Certificate) {
	c.t.Helper()
	dir := filepath.Join(c.t.TempDir(), name)
	c.mustPKI("bootstrap", "--ca-url", c.url, "--fingerprint", c.fp, "--out", dir,
		"--token", c.token(name, name+".rampart.test", "127.0.0.1"))
	return dir, certOf(c.t, filepath.Join(dir, client.CertFile))
}

// expire replaces the leaf in dir/cert.pem by the same certificate
// re-signed by the intermediate with its validity moved back by shift. Only
// the validity differs: serial (which step-ca looks up in its database for
// the provisioner), subject, key, SANs and every extension (step's
// provisioner extension included) are the original bytes.
func (c *expiryCA) expire(dir string, shift time.Duration) (orig, expired *x509.Certificate) {
	t := c.t
	t.Helper()
	b, err := client.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	orig = b.Leaf()
	expired = resign(t, orig, orig.NotBefore.Add(-shift), orig.NotAfter.Add(-shift), c.inter, c.interKey)
	if err := expired.CheckSignatureFrom(c.inter); err != nil {
		t.Fatalf("expired copy does not verify against the intermediate: %v", err)
	}
	if expired.SerialNumber.Cmp(orig.SerialNumber) != 0 ||
		!bytes.Equal(expired.RawSubject, orig.RawSubject) ||
		!bytes.Equal(expired.RawIssuer, orig.RawIssuer) ||
		!bytes.Equal(expired.RawSubjectPublicKeyInfo, orig.RawSubjectPublicKeyInfo) ||
		!reflect.DeepEqual(expired.Extensions, orig.Extensions) {
		t.Fatal("expired copy differs from the original in more than its validity")
	}
	if !time.Now().After(expired.NotAfter) {
		t.Fatalf("copy not expired: NotAfter %s", expired.NotAfter)
	}
	var pemChain []byte
	for _, x := range append([]*x509.Certificate{expired}, b.Chain[1:]...) {
		pemChain = append(pemChain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})...)
	}
	if err := os.WriteFile(filepath.Join(dir, client.CertFile), pemChain, 0o644); err != nil {
		t.Fatal(err)
	}
	return orig, expired
}

// resign returns cert with its TBSCertificate's validity replaced, signed
// again by issuer. Everything else in the TBSCertificate keeps its bytes.
func resign(t testing.TB, cert *x509.Certificate, notBefore, notAfter time.Time, issuer *x509.Certificate, key crypto.Signer) *x509.Certificate {
	t.Helper()
	var outer struct {
		TBS       asn1.RawValue
		Alg       asn1.RawValue
		Signature asn1.BitString
	}
	if _, err := asn1.Unmarshal(cert.Raw, &outer); err != nil {
		t.Fatal(err)
	}
	// version [0], serialNumber, signature, issuer, validity, subject, ...
	var fields []asn1.RawValue
	for rest := outer.TBS.Bytes; len(rest) > 0; {
		var f asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &f); err != nil {
			t.Fatal(err)
		}
		fields = append(fields, f)
	}
	const validity = 4
	if len(fields) < 7 || fields[0].Class != asn1.ClassContextSpecific || fields[validity].Tag != asn1.TagSequence {
		t.Fatalf("unexpected TBSCertificate layout: %d fields", len(fields))
	}
	v, err := asn1.Marshal(struct{ NotBefore, NotAfter time.Time }{notBefore.UTC(), notAfter.UTC()})
	if err != nil {
		t.Fatal(err)
	}
	fields[validity] = asn1.RawValue{FullBytes: v}
	var body []byte
	for _, f := range fields {
		body = append(body, f.FullBytes...)
	}
	tbs, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	if err != nil {
		t.Fatal(err)
	}
	if issuer.PublicKeyAlgorithm != x509.ECDSA || cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Fatalf("resign handles ECDSA with SHA-256, got %s", cert.SignatureAlgorithm)
	}
	if _, ok := key.Public().(*ecdsa.PublicKey); !ok {
		t.Fatalf("intermediate key is %T", key.Public())
	}
	sum := sha256.Sum256(tbs)
	sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	outer.TBS = asn1.RawValue{FullBytes: tbs}
	outer.Signature = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	der, err := asn1.Marshal(outer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotBefore.Equal(notBefore.Truncate(time.Second)) || !c.NotAfter.Equal(notAfter.Truncate(time.Second)) {
		t.Fatalf("re-signed validity %s..%s, want %s..%s", c.NotBefore, c.NotAfter, notBefore, notAfter)
	}
	return c
}

// snapshot records the bytes of every file in a certificate directory.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		m[e.Name()] = readFile(t, filepath.Join(dir, e.Name()))
	}
	return m
}

func inode(t testing.TB, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// hookCmd is a reload hook that keeps a copy of cert.pem as the hook saw it
// and the directory listing, so the test can tell the hook ran after the
// write and that no temporary file was left.
func hookCmd(work string) (cmd, seenCert, seenList string) {
	seenCert, seenList = filepath.Join(work, "hook-cert.pem"), filepath.Join(work, "hook-ls")
	return fmt.Sprintf(`cp "$PKI_DIR/cert.pem" %s && ls -A "$PKI_DIR" > %s`, seenCert, seenList), seenCert, seenList
}

func sameNames(a, b *x509.Certificate) bool {
	return reflect.DeepEqual(a.DNSNames, b.DNSNames) && reflect.DeepEqual(a.URIs, b.URIs) &&
		fmt.Sprint(a.IPAddresses) == fmt.Sprint(b.IPAddresses) && a.Subject.String() == b.Subject.String()
}

// TestRenewAfterExpiry: a host whose certificate expired a day ago (it
// slept over the weekend) runs the real `pki renew` against the real `pki
// serve`. With leaf.allow_renewal_after_expiry the CA renews it from a
// renew token signed by the old key, unless it expired longer ago than
// leaf.renewal_after_expiry_max; without it, or past that limit, renewal is
// refused, the files stay as they were and a recovery token is the way
// back; a revoked certificate is refused either way.
func TestRenewAfterExpiry(t *testing.T) {
	bin := pkiBinary(t)
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			c := newExpiryCA(t, bin, st.dsn(t))

			t.Run("allowed-renews-expired", func(t *testing.T) {
				defer c.use(t)()
				dir, _ := c.host("web1")
				orig, expired := c.expire(dir, 24*time.Hour+expiredSince)
				key := readFile(t, filepath.Join(dir, client.KeyFile))
				ino := inode(t, filepath.Join(dir, client.CertFile))
				work := t.TempDir()
				hook, seenCert, seenList := hookCmd(work)

				out := c.mustPKI("renew", "--dir", dir, "--exec", hook)
				if strings.Contains(out, "not due") {
					t.Fatalf("expired certificate reported not due: %s", out)
				}

				b, err := client.LoadBundle(dir)
				if err != nil {
					t.Fatal(err)
				}
				nc, now := b.Leaf(), time.Now()
				if now.Before(nc.NotBefore) || now.After(nc.NotAfter) {
					t.Fatalf("renewed certificate valid %s..%s, not now", nc.NotBefore, nc.NotAfter)
				}
				if _, err := nc.Verify(x509.VerifyOptions{Roots: poolOf(b.Root), Intermediates: poolOf(b.Chain[1:]...),
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Fatalf("renewed certificate does not verify now: %v", err)
				}
				if nc.SerialNumber.Cmp(expired.SerialNumber) == 0 {
					t.Error("renewal kept the expired serial")
				}
				if !sameNames(nc, orig) {
					t.Errorf("names changed: %v %v %v, want %v %v %v", nc.Subject, nc.DNSNames, nc.IPAddresses, orig.Subject, orig.DNSNames, orig.IPAddresses)
				}
				if !bytes.Equal(nc.RawSubjectPublicKeyInfo, orig.RawSubjectPublicKeyInfo) || readFile(t, filepath.Join(dir, client.KeyFile)) != key {
					t.Error("renewal changed the key")
				}
				if got, want := nc.NotAfter.Sub(nc.NotBefore), expired.NotAfter.Sub(expired.NotBefore); got != want {
					t.Errorf("renewed lifetime %s, want the old one %s", got, want)
				}
				// Written by rename (a new inode), nothing left behind, and
				// the hook saw the final file.
				if inode(t, filepath.Join(dir, client.CertFile)) == ino {
					t.Error("cert.pem rewritten in place, not replaced atomically")
				}
				want := []string{client.CertFile, client.CAURLFile, client.KeyFile, client.RootFile}
				got := strings.Fields(readFile(t, seenList))
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("directory while the hook ran: %v", got)
				}
				if readFile(t, seenCert) != readFile(t, filepath.Join(dir, client.CertFile)) {
					t.Error("the hook ran before the new cert.pem was in place")
				}
				// The audit line names the expired certificate it renewed.
				found := false
				for _, l := range strings.Split(readFile(t, filepath.Join(c.dir, "audit.log")), "\n") {
					if strings.Contains(l, `"op":"x509-renew"`) && strings.Contains(l, `"serial":"`+nc.SerialNumber.String()+`"`) {
						found = true
						if !strings.Contains(l, `"peer_serial":"`+expired.SerialNumber.String()+`"`) || !strings.Contains(l, `"auth":"renew-token"`) {
							t.Errorf("audit line does not name the expired certificate %s: %s", expired.SerialNumber, l)
						}
					}
				}
				if !found {
					t.Errorf("audit log lacks the renewal of %s", nc.SerialNumber)
				}
			})

			t.Run("allowed-expired-too-long-refused", func(t *testing.T) {
				defer c.use(t)()
				// step-ca's allowRenewalAfterExpiry has no window; pki's
				// leaf.renewal_after_expiry_max (30d as pki init writes
				// it) refuses a certificate that expired a year ago, and a
				// recovery token is the way back.
				dir, orig := c.host("hermit")
				_, expired := c.expire(dir, 24*time.Hour+365*24*time.Hour)
				c.wantTooOld(dir, expired, "hermit", "30d")

				// The documented recovery: a fresh token minted on the CA.
				c.wantRecovered(dir, "hermit", orig)
			})

			t.Run("expired-too-long-any-header-form", func(t *testing.T) {
				defer c.use(t)()
				// step-ca takes the renew token from whatever follows the
				// first "Bearer " in the Authorization header. The age
				// limit reads it the same way: "Basic Bearer TOKEN" from
				// someone holding a year-old certificate and its key is
				// refused, while the same form for a certificate that
				// expired yesterday reaches step-ca and renews (so the
				// refusal is the limit, not a parse failure).
				oldDir, _ := c.host("thief2")
				c.expire(oldDir, 24*time.Hour+365*24*time.Hour)
				status, msg := c.postRenewToken(oldDir, "Basic Bearer ")
				if status != http.StatusForbidden || !strings.Contains(msg, "certificate expired too long ago") {
					t.Errorf("year-old certificate, token after \"Basic \": %d %q, want 403 and the age refusal", status, msg)
				}
				recentDir, _ := c.host("thief3")
				c.expire(recentDir, 24*time.Hour+expiredSince)
				if status, msg := c.postRenewToken(recentDir, "Basic Bearer "); status != http.StatusCreated {
					t.Errorf("recent certificate, token after \"Basic \": %d %q, want 201 from step-ca", status, msg)
				}
			})

			t.Run("limit-from-config", func(t *testing.T) {
				defer c.use(t)()
				// The limit is the configured value: at 1d, a certificate
				// that expired 26 h ago is past it.
				dir, _ := c.host("napper")
				_, expired := c.expire(dir, 24*time.Hour+expiredSince)
				c.editConfig("renewal_after_expiry_max: 30d", "renewal_after_expiry_max: 1d")
				defer c.editConfig("renewal_after_expiry_max: 1d", "renewal_after_expiry_max: 30d")
				c.wantTooOld(dir, expired, "napper", "1d")
			})

			t.Run("allowed-but-wrong-key-refused", func(t *testing.T) {
				defer c.use(t)()
				// Whoever holds only the expired certificate (it is public)
				// cannot renew it: the token must be signed by its key.
				dir, _ := c.host("thief")
				c.expire(dir, 24*time.Hour+expiredSince)
				other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				blk, err := pemutil.Serialize(other, pemutil.WithPKCS8(true))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, client.KeyFile), pem.EncodeToMemory(blk), 0o600); err != nil {
					t.Fatal(err)
				}
				before := snapshot(t, dir)
				out, code := c.pki("renew", "--dir", dir)
				t.Logf("pki renew (wrong key): exit %d\n%s", code, out)
				if code != 1 || !strings.Contains(out, "with 401: token signature invalid") {
					t.Fatalf("renew token signed by another key: exit %d, want 1 and a 401", code)
				}
				if !reflect.DeepEqual(snapshot(t, dir), before) {
					t.Error("refused renewal changed the directory")
				}
			})

			t.Run("revoked-then-expired-refused", func(t *testing.T) {
				defer c.use(t)()
				dir, orig := c.host("gone")
				c.mustPKI("revoke", "--config", c.cfgPath, orig.SerialNumber.String())
				c.expire(dir, 24*time.Hour+expiredSince)
				before := snapshot(t, dir)
				work := t.TempDir()
				hook, seenCert, _ := hookCmd(work)
				out, code := c.pki("renew", "--dir", dir, "--exec", hook)
				t.Logf("pki renew (revoked): exit %d\n%s", code, out)
				if code != 1 || !strings.Contains(out, "revoked") {
					t.Fatalf("renew of a revoked, expired certificate: exit %d\n%s", code, out)
				}
				if !reflect.DeepEqual(snapshot(t, dir), before) {
					t.Error("refused renewal changed the directory")
				}
				if _, err := os.Stat(seenCert); err == nil {
					t.Error("hook ran after a refused renewal")
				}
				_, err := client.Renew(context.Background(), dir, "", client.FileOptions{})
				wantErr(t, err, client.ErrRevoked)
			})

			t.Run("policy-narrowed-refused", func(t *testing.T) {
				defer c.use(t)()
				// step-ca copies the old names into the renewed certificate
				// without any name policy; pki holds renewals, expired or
				// not, to the policy in force now.
				expiredDir, _ := c.host("moved")
				c.expire(expiredDir, 24*time.Hour+expiredSince)
				validDir, _ := c.host("moved2")
				const open, narrow = "policy:\n    dns: []\n    ip: []\n", "policy:\n    dns: [\"*.elsewhere.test\", localhost]\n    ip: [127.0.0.0/8]\n"
				c.editConfig(open, narrow)
				defer c.editConfig(narrow, open)
				for _, dir := range []string{expiredDir, validDir} {
					before := snapshot(t, dir)
					out, code := c.pki("renew", "--dir", dir, "--force")
					if code != 1 || !strings.Contains(out, "with 403: renewal of serial") || !strings.Contains(out, `name policy: DNS name "`) {
						t.Errorf("renewal outside the narrowed policy: exit %d\n%s", code, out)
					}
					if !reflect.DeepEqual(snapshot(t, dir), before) {
						t.Error("refused renewal changed the directory")
					}
				}
			})

			c.allowRenewalAfterExpiry(false)

			t.Run("disallowed-refused", func(t *testing.T) {
				defer c.use(t)()
				dir, _ := c.host("sleepy")
				_, expired := c.expire(dir, 24*time.Hour+expiredSince)
				c.wantRefused(dir, "refused",
					"certificate expired at "+expired.NotAfter.UTC().Format(time.RFC3339),
					"with 401: certificate expired and renewal after expiry is not allowed",
					"pki token sleepy",
					"--token-file")
				// Back on, the same expired certificate renews: the refusal
				// was the policy, nothing else.
				c.allowRenewalAfterExpiry(true)
				defer c.allowRenewalAfterExpiry(false)
				if _, err := client.Renew(context.Background(), dir, "", client.FileOptions{}); err != nil {
					t.Fatalf("same certificate with the option back on: %v", err)
				}
			})

			t.Run("disallowed-recovery-token", func(t *testing.T) {
				defer c.use(t)()
				dir, orig := c.host("sleepy2")
				c.expire(dir, 24*time.Hour+expiredSince)
				c.wantRecovered(dir, "sleepy2", orig)
			})
		})
	}
}

// wantRecovered runs `pki renew --token-file` (with a reload hook) on
// dir, whose certificate expired, with a fresh token for name minted on
// the CA, and checks the documented recovery: a valid certificate with
// orig's names, a new key, the token file deleted, the hook run.
func (c *expiryCA) wantRecovered(dir, name string, orig *x509.Certificate) {
	t := c.t
	t.Helper()
	oldKey := readFile(t, filepath.Join(dir, client.KeyFile))
	tokFile := filepath.Join(t.TempDir(), name+".token")
	if err := os.WriteFile(tokFile, []byte(c.token(name, name+".rampart.test", "127.0.0.1")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook, seenCert, _ := hookCmd(t.TempDir())
	c.mustPKI("renew", "--dir", dir, "--exec", hook, "--token-file", tokFile)
	nc := certOf(t, filepath.Join(dir, client.CertFile))
	if now := time.Now(); now.Before(nc.NotBefore) || now.After(nc.NotAfter) || !sameNames(nc, orig) {
		t.Fatalf("recovered certificate %v %v valid %s..%s", nc.DNSNames, nc.IPAddresses, nc.NotBefore, nc.NotAfter)
	}
	if readFile(t, filepath.Join(dir, client.KeyFile)) == oldKey {
		t.Error("recovery kept the old key; it joins again with a new one")
	}
	if _, err := os.Stat(tokFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("used recovery token not deleted: %v", err)
	}
	if readFile(t, seenCert) != readFile(t, filepath.Join(dir, client.CertFile)) {
		t.Error("hook did not run after the recovery")
	}
}

// wantRefused runs `pki renew` (with a reload hook) on dir and checks that
// the renewal is refused: exit status 1, a message holding every want, the
// directory byte-identical, no hook, and client.ErrExpired (not
// ErrTokenExpired) for Go callers, who leave the directory alone too.
func (c *expiryCA) wantRefused(dir, what string, want ...string) {
	t := c.t
	t.Helper()
	before := snapshot(t, dir)
	hook, seenCert, _ := hookCmd(t.TempDir())
	out, code := c.pki("renew", "--dir", dir, "--exec", hook)
	t.Logf("pki renew (%s): exit %d\n%s", what, code, out)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("message lacks %q", w)
		}
	}
	if !reflect.DeepEqual(snapshot(t, dir), before) {
		t.Error("refused renewal changed the directory")
	}
	if _, err := os.Stat(seenCert); err == nil {
		t.Error("hook ran after a refused renewal")
	}
	_, err := client.Renew(context.Background(), dir, "", client.FileOptions{})
	wantErr(t, err, client.ErrExpired)
	if errors.Is(err, client.ErrTokenExpired) {
		t.Errorf("refusal reported as an expired token: %v", err)
	}
	if !reflect.DeepEqual(snapshot(t, dir), before) {
		t.Error("refused renewal (library) changed the directory")
	}
}

// wantTooOld runs `pki renew` (with a reload hook) on dir, whose
// certificate expired longer ago than the CA's limit, and checks the
// refusal (see wantRefused): a message saying when it expired, the limit
// and how to recover, and a refusal line in the CA's log.
func (c *expiryCA) wantTooOld(dir string, expired *x509.Certificate, name, limit string) {
	t := c.t
	t.Helper()
	at := expired.NotAfter.UTC().Format(time.RFC3339)
	c.wantRefused(dir, "expired too long ago",
		"with 403: renewal of serial "+expired.SerialNumber.String()+": certificate expired too long ago",
		"it expired at "+at,
		"at most "+limit+" after they expire (leaf.renewal_after_expiry_max)",
		"pki token "+name,
		"pki renew --token-file FILE")
	found := false
	for _, l := range strings.Split(c.log(), "\n") {
		if strings.Contains(l, "pki: request refused") && strings.Contains(l, "route=/renew") && strings.Contains(l, "status=403") &&
			strings.Contains(l, "serial="+expired.SerialNumber.String()) && strings.Contains(l, "not_after="+at) &&
			strings.Contains(l, "auth=renew-token") && strings.Contains(l, "expired_for=") && strings.Contains(l, "renewal_after_expiry_max="+limit) {
			found = true
		}
	}
	if !found {
		t.Errorf("no refusal line for serial %s in the CA log:\n%s", expired.SerialNumber, c.log())
	}
}

// postRenewToken posts to /1.0/renew with a renew token for dir's
// certificate, signed by its key, placed after prefix in the Authorization
// header. It returns the status and the CA's message.
func (c *expiryCA) postRenewToken(dir, prefix string) (int, string) {
	t := c.t
	t.Helper()
	b, err := client.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	var x5c []string
	for _, x := range b.Chain {
		x5c = append(x5c, base64.StdEncoding.EncodeToString(x.Raw))
	}
	opts := new(jose.SignerOptions).WithType("JWT").WithHeader(jose.HeaderKey(jose.X5cInsecureKey), x5c)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: b.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var id [16]byte
	_, _ = rand.Read(id[:])
	tok, err := jose.Signed(signer).Claims(jose.Claims{
		ID: hex.EncodeToString(id[:]), Issuer: "step-ca-client/1.0", Subject: b.Leaf().Subject.CommonName,
		Audience: jose.Audience{c.url + "/1.0/renew"}, IssuedAt: jose.NewNumericDate(now),
		NotBefore: jose.NewNumericDate(now), Expiry: jose.NewNumericDate(now.Add(5 * time.Minute)),
	}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.url+"/1.0/renew", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", prefix+tok)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(b.Root)}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Message string `json:"message"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Message
}
