// Package acme_test runs acme-renew's renewer against Pebble and
// pebble-challtestsrv, Let's Encrypt's test CA and challenge server.
package acme_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/test/testenv"
)

// recorder counts every request the renewer sends to the CA and keeps the
// JWS payloads of new-order requests.
type recorder struct {
	base   http.RoundTripper
	n      atomic.Int64
	mu     sync.Mutex
	orders []map[string]any
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.n.Add(1)
	if req.Method == http.MethodPost && strings.Contains(req.URL.Path, "order-plz") && req.Body != nil {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		var jws struct{ Payload string }
		if json.Unmarshal(body, &jws) == nil {
			if p, err := base64.RawURLEncoding.DecodeString(jws.Payload); err == nil {
				var m map[string]any
				if json.Unmarshal(p, &m) == nil {
					r.mu.Lock()
					r.orders = append(r.orders, m)
					r.mu.Unlock()
				}
			}
		}
	}
	return r.base.RoundTrip(req)
}

func (r *recorder) allOrders() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.orders...)
}

// pebbleCannotFind reports whether Pebble v2.10.1 fails to find leaf by its
// ARI CertID: it stores hex(serial.Bytes()), while the CertID carries the
// serial's DER bytes, which start with a zero byte when the top bit of the
// first minimal byte is set.
func pebbleCannotFind(leaf *x509.Certificate) bool {
	b := leaf.SerialNumber.Bytes()
	return len(b) > 0 && b[0]&0x80 != 0
}

func (r *recorder) lastOrder() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.orders) == 0 {
		return nil
	}
	return r.orders[len(r.orders)-1]
}

type harness struct {
	t       *testing.T
	p       *testenv.Pebble
	dir     string
	rec     *recorder
	cfgPath string
}

func newHarness(t *testing.T, opts testenv.PebbleOptions) *harness {
	testenv.RequireRoot(t)
	p := testenv.StartPebble(t, opts)
	return &harness{t: t, p: p, dir: t.TempDir(), rec: &recorder{}}
}

// cert is one certificate of a generated config.
type cert struct {
	name, challenge string
	domains         []string
	profile         string
}

func (h *harness) writeConfig(certs ...cert) *acme.Config {
	h.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\nconcurrency: 8\nmetrics_textfile: %s\naccounts:\n  pebble:\n    directory: %s\n    email: ops@example.com\n    ca_bundle: %s\ncertificates:\n",
		filepath.Join(h.dir, "state"), filepath.Join(h.dir, "acme.prom"), h.p.DirectoryURL, h.p.CAFile)
	for _, c := range certs {
		fmt.Fprintf(&b, "  - name: %s\n    domains: [%s]\n", c.name, strings.Join(c.domains, ", "))
		if c.profile != "" {
			fmt.Fprintf(&b, "    profile: %s\n", c.profile)
		}
		b.WriteString("    challenge:\n")
		switch c.challenge {
		case "http01":
			fmt.Fprintf(&b, "      http01: {address: 127.0.0.1, port: %d}\n", h.p.HTTPPort)
		case "tlsalpn01":
			fmt.Fprintf(&b, "      tlsalpn01: {address: 127.0.0.1, port: %d}\n", h.p.TLSPort)
		case "dns01":
			fmt.Fprintf(&b, "      dns01:\n        provider: httpreq\n        env: {HTTPREQ_ENDPOINT: %q, HTTPREQ_PROPAGATION_TIMEOUT: \"20\", HTTPREQ_POLLING_INTERVAL: \"1\"}\n        resolvers: [%q]\n        skip_authoritative_check: true\n",
				h.p.HTTPReqEndpoint, h.p.DNSAddr)
		}
		fmt.Fprintf(&b, "    output:\n      key: %s\n      fullchain: %s\n    deploy_hooks: ['echo \"$RAMPART_ACME_NAME\" >> %s']\n",
			filepath.Join(h.dir, "links", c.name+".key"), filepath.Join(h.dir, "links", c.name+".crt"), filepath.Join(h.dir, "hooks.log"))
	}
	h.cfgPath = filepath.Join(h.dir, "acme.yaml")
	if err := os.WriteFile(h.cfgPath, []byte(b.String()), 0o600); err != nil {
		h.t.Fatal(err)
	}
	cfg, err := acme.LoadConfig(h.cfgPath)
	if err != nil {
		h.t.Fatalf("%v\n%s", err, b.String())
	}
	return cfg
}

func (h *harness) run(cfg *acme.Config, now time.Time) *acme.Summary {
	h.t.Helper()
	return h.runWith(cfg, now, nil).sum
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func result(t *testing.T, s *acme.Summary, name string) acme.Result {
	t.Helper()
	for _, r := range s.Results {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no result for %s", name)
	return acme.Result{}
}

// checkPair verifies that the key and chain reachable through the link
// paths belong together, chain to Pebble's root, and cover the names.
func checkPair(t *testing.T, keyPath, chainPath string, roots *x509.CertPool, names []string) *x509.Certificate {
	t.Helper()
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, err := os.ReadFile(chainPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(chainPEM, keyPEM); err != nil {
		t.Fatalf("%s and %s do not match: %v", keyPath, chainPath, err)
	}
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, n := range names {
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: n, Roots: roots, Intermediates: inter}); err != nil {
			t.Fatalf("%s does not verify for %s: %v", chainPath, n, err)
		}
	}
	return certs[0]
}

func TestRenewAgainstPebble(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testenv.PebbleOptions{})
	certs := []cert{
		{"web", "http01", []string{"web.example.com", "www.web.example.com"}, ""},
		{"alpn", "tlsalpn01", []string{"alpn.example.net"}, ""},
		{"dns", "dns01", []string{"dns.example.org", "api.dns.example.org"}, "shortlived"},
	}
	cfg := h.writeConfig(certs...)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(h.p.Root(t))
	now := time.Now()

	// 1. From nothing: every certificate is obtained, with its challenge.
	sum := h.run(cfg, now)
	if sum.Failed() != 0 {
		t.Fatalf("first run failed")
	}
	leaves := map[string]*x509.Certificate{}
	for _, c := range certs {
		if r := result(t, sum, c.name); r.Action != acme.Renewed {
			t.Fatalf("%s: %s (%s)", c.name, r.Action, r.Reason)
		}
		leaves[c.name] = checkPair(t, filepath.Join(h.dir, "links", c.name+".key"), filepath.Join(h.dir, "links", c.name+".crt"), roots, c.domains)
	}
	// Pebble gives orders without a profile a random one; "shortlived"
	// must have been asked for and honoured (6 days).
	if life := leaves["dns"].NotAfter.Sub(leaves["dns"].NotBefore); life > 7*24*time.Hour {
		t.Fatalf("profile shortlived: lifetime %s", life)
	}
	var sawProfile bool
	for _, o := range h.rec.orders {
		sawProfile = sawProfile || o["profile"] == "shortlived"
	}
	if !sawProfile {
		t.Fatal("no new-order asked for profile shortlived")
	}
	hooks, _ := os.ReadFile(filepath.Join(h.dir, "hooks.log"))
	if got := strings.Fields(string(hooks)); len(got) != 3 {
		t.Fatalf("deploy hooks ran %v, want once per certificate", got)
	}
	prom, err := os.ReadFile(filepath.Join(h.dir, "acme.prom"))
	if err != nil || !strings.Contains(string(prom), `rampart_acme_certificate_expiry_timestamp_seconds{name="dns"}`) ||
		!strings.Contains(string(prom), `rampart_acme_consecutive_failures{name="web"} 0`) {
		t.Fatalf("metrics textfile: %v\n%s", err, prom)
	}

	// 2. Nothing is due: no request at all, no hook.
	h.rec.n.Store(0)
	sum = h.run(cfg, now.Add(time.Minute))
	if h.rec.n.Load() != 0 {
		t.Fatalf("a run with nothing due made %d requests", h.rec.n.Load())
	}
	for _, c := range certs {
		if r := result(t, sum, c.name); r.Action != acme.NotDue {
			t.Fatalf("second run: %s: %s (%s)", c.name, r.Action, r.Reason)
		}
	}
	if again, _ := os.ReadFile(filepath.Join(h.dir, "hooks.log")); !bytes.Equal(again, hooks) {
		t.Fatalf("hooks ran on a no-op run: %s", again)
	}

	// 3. The CA moves web's window into the past: after Retry-After the
	// next run asks, renews, and names the old certificate in "replaces".
	webPEM, _ := os.ReadFile(filepath.Join(h.dir, "links", "web.crt"))
	h.p.SetRenewalInfo(t, webPEM, now.Add(-2*time.Hour), now.Add(-time.Hour))
	later := now.Add(7 * time.Hour) // past Pebble's 6h Retry-After
	sum = h.run(cfg, later)
	r := result(t, sum, "web")
	wantID, _ := certificate.MakeARICertID(leaves["web"])
	if pebbleCannotFind(leaves["web"]) {
		// Pebble v2.10.1 indexes certificates by the serial's minimal bytes,
		// RFC 9773 (and lego) by its DER bytes: when those have a leading
		// zero (about 1 serial in 256) Pebble cannot find the certificate
		// named in "replaces", and acme-renew must order again without it.
		t.Logf("Pebble cannot find serial %x by its ARI CertID; checking the retry without replaces", leaves["web"].SerialNumber)
		orders := h.rec.allOrders()
		if r.Action != acme.Renewed || r.Replaced || len(orders) < 2 ||
			orders[len(orders)-2]["replaces"] != wantID || orders[len(orders)-1]["replaces"] != nil {
			t.Fatalf("web after set-renewal-info: %+v; orders %v", r, orders)
		}
	} else {
		if r.Action != acme.Renewed || !r.Replaced {
			t.Fatalf("web after set-renewal-info: %+v", r)
		}
		if got := h.rec.lastOrder()["replaces"]; got != wantID {
			t.Fatalf("new-order replaces = %v, want %s", got, wantID)
		}
	}
	newWeb := checkPair(t, filepath.Join(h.dir, "links", "web.key"), filepath.Join(h.dir, "links", "web.crt"), roots, certs[0].domains)
	if newWeb.SerialNumber.Cmp(leaves["web"].SerialNumber) == 0 {
		t.Fatal("web was not replaced on disk")
	}
	for _, n := range []string{"alpn", "dns"} {
		if r := result(t, sum, n); r.Action != acme.NotDue {
			t.Fatalf("%s after ARI re-check: %+v", n, r)
		}
	}

	// 4. The CA rejects the order (a blocked name): the old files stay,
	// the run fails, and the certificate backs off.
	certs[1].domains = append(certs[1].domains, "blocked-domain.example")
	cfg = h.writeConfig(certs...)
	oldKey, _ := os.ReadFile(filepath.Join(h.dir, "links", "alpn.key"))
	oldCrt, _ := os.ReadFile(filepath.Join(h.dir, "links", "alpn.crt"))
	sum = h.run(cfg, later.Add(time.Minute))
	if r := result(t, sum, "alpn"); r.Action != acme.Failed || sum.Failed() != 1 {
		t.Fatalf("rejected order: %+v (failed %d)", r, sum.Failed())
	}
	k2, _ := os.ReadFile(filepath.Join(h.dir, "links", "alpn.key"))
	c2, _ := os.ReadFile(filepath.Join(h.dir, "links", "alpn.crt"))
	if !bytes.Equal(oldKey, k2) || !bytes.Equal(oldCrt, c2) {
		t.Fatal("a rejected order changed the files on disk")
	}
	st, err := acme.LoadState(cfg.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	if cs := st.Certificates["alpn"]; cs.Failures != 1 || !cs.NextAttempt.After(later) || cs.LastError == "" {
		t.Fatalf("state after failure: %+v", cs)
	}
	h.rec.n.Store(0)
	sum = h.run(cfg, later.Add(2*time.Minute))
	if r := result(t, sum, "alpn"); r.Action != acme.BackingOff || !strings.Contains(r.Reason, "backing off after 1 failure(s) until") || h.rec.n.Load() != 0 {
		t.Fatalf("during backoff: %+v, %d requests", r, h.rec.n.Load())
	}

	// 5. A run while another holds the lock does not proceed.
	unlock, err := cfg.Lock()
	if err != nil {
		t.Fatal(err)
	}
	rr, _ := acme.NewRenewer(cfg, acme.Options{})
	if _, err := rr.Run(context.Background()); !errors.Is(err, acme.ErrLocked) {
		t.Fatalf("run under someone else's lock: %v, want ErrLocked", err)
	}
	unlock()

	// check reads the files on disk: all valid, but alpn's names no longer
	// match the config.
	var out bytes.Buffer
	if status := acme.Check(&out, cfg, acme.CheckThresholds{Warning: 14 * 24 * time.Hour, Critical: 7 * 24 * time.Hour}, time.Now()); status != acme.StatusWarning {
		t.Fatalf("check = %d, want warning for alpn's names:\n%s", status, out.String())
	}
	if !strings.Contains(out.String(), "OK web:") || !strings.Contains(out.String(), "WARNING alpn:") {
		t.Fatalf("check output:\n%s", out.String())
	}
}
