package acme_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/test/testenv"
)

const benchCerts = 50

func benchNames() []string {
	names := make([]string, benchCerts)
	for i := range names {
		names[i] = fmt.Sprintf("b%02d.bench.example.com", i)
	}
	return names
}

// benchHarness is a Pebble and a 50-certificate HTTP-01 config with
// concurrency 16. lego waits 5s before its first authorization poll when
// the CA sends no Retry-After with the challenge (Pebble does not), so
// issuance time is mostly waves of that wait; the bound sets the wave count.
func benchHarness(b *testing.B) (*harness, *acme.Config) {
	testenv.RequireRoot(b)
	p := testenv.StartPebble(b, testenv.PebbleOptions{})
	h := &harness{p: p, dir: b.TempDir(), rec: &recorder{}}
	var sb strings.Builder
	fmt.Fprintf(&sb, "state_dir: %s\nconcurrency: 16\naccounts:\n  pebble: {directory: %q, ca_bundle: %q}\ncertificates:\n",
		filepath.Join(h.dir, "state"), p.DirectoryURL, p.CAFile)
	for _, n := range benchNames() {
		fmt.Fprintf(&sb, "  - domains: [%s]\n    challenge: {http01: {address: 127.0.0.1, port: %d}}\n", n, p.HTTPPort)
	}
	path := filepath.Join(h.dir, "acme.yaml")
	os.WriteFile(path, []byte(sb.String()), 0o600)
	cfg, err := acme.LoadConfig(path)
	if err != nil {
		b.Fatal(err)
	}
	return h, cfg
}

func (h *harness) runOnce(b *testing.B, cfg *acme.Config) *acme.Summary {
	r, err := acme.NewRenewer(cfg, acme.Options{
		Logger: slog.New(slog.DiscardHandler),
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			h.rec.base = rt
			return h.rec
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	sum, err := r.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return sum
}

// BenchmarkIssue50VsCertbot obtains 50 certificates from nothing with
// acme-renew, then the same 50 names with certbot (standalone HTTP-01, one
// invocation per certificate, as certbot works), against the same Pebble.
func BenchmarkIssue50VsCertbot(b *testing.B) {
	certbot := testenv.Binary(b, "certbot")
	h, cfg := benchHarness(b)
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		os.RemoveAll(filepath.Join(h.dir, "state"))
		start := time.Now()
		sum := h.runOnce(b, cfg)
		ours += time.Since(start)
		if sum.Failed() != 0 {
			b.Fatalf("%d certificates failed", sum.Failed())
		}

		cb := filepath.Join(h.dir, "certbot"+strconv.Itoa(i))
		start = time.Now()
		for _, n := range benchNames() {
			cmd := exec.Command(certbot, "certonly", "--standalone", "--non-interactive", "--agree-tos",
				"--register-unsafely-without-email", "--server", h.p.DirectoryURL,
				"--http-01-port", strconv.Itoa(h.p.HTTPPort), "--http-01-address", "127.0.0.1",
				"--config-dir", cb+"/config", "--work-dir", cb+"/work", "--logs-dir", cb+"/logs",
				"--key-type", "ecdsa", "-d", n)
			cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+h.p.CAFile)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("certbot %s: %v\n%s", n, err, out)
			}
		}
		theirs += time.Since(start)
	}
	b.ReportMetric(ours.Seconds()/float64(b.N), "acme-renew-s")
	b.ReportMetric(theirs.Seconds()/float64(b.N), "certbot-s")
	b.ReportMetric(ours.Seconds()/theirs.Seconds(), "ratio")
}

// BenchmarkNoopRun50 times a run over 50 certificates when none is due,
// and counts its requests to the CA (target: 0 requests, ≤ 200 ms).
func BenchmarkNoopRun50(b *testing.B) {
	h, cfg := benchHarness(b)
	if sum := h.runOnce(b, cfg); sum.Failed() != 0 {
		b.Fatalf("%d certificates failed", sum.Failed())
	}
	h.rec.n.Store(0)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		sum := h.runOnce(b, cfg)
		for _, r := range sum.Results {
			if r.Action != acme.NotDue {
				b.Fatalf("%s: %s", r.Name, r.Action)
			}
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/run")
	b.ReportMetric(float64(h.rec.n.Load())/float64(b.N), "requests/run")
}
