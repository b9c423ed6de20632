package acme_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/providers/dns"

	"github.com/rampart-sec/rampart/acme"
)

// loadYAML writes doc as the harness's config file and loads it.
func (h *harness) loadYAML(doc string) *acme.Config {
	h.t.Helper()
	h.cfgPath = filepath.Join(h.dir, "acme.yaml")
	if err := os.WriteFile(h.cfgPath, []byte(doc), 0o600); err != nil {
		h.t.Fatal(err)
	}
	cfg, err := acme.LoadConfig(h.cfgPath)
	if err != nil {
		h.t.Fatalf("%v\n%s", err, doc)
	}
	return cfg
}

// header is the start of a config for the harness's Pebble: state and
// metrics under h.dir, one account, then "certificates:".
func (h *harness) header(extra string) string {
	return "state_dir: " + filepath.Join(h.dir, "state") + "\n" +
		"concurrency: 8\n" +
		"metrics_textfile: " + filepath.Join(h.dir, "acme.prom") + "\n" +
		extra +
		"accounts:\n  pebble:\n    directory: " + h.p.DirectoryURL + "\n    email: ops@example.com\n    ca_bundle: " + h.p.CAFile + "\n" +
		"certificates:\n"
}

// runLog is what one run returned and logged.
type runLog struct {
	sum *acme.Summary
	log string // the renewer's slog output
	out string // the summary as acme-renew run prints it
}

// syncBuffer is a bytes.Buffer safe for the renewer's concurrent logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runWith is harness.run with the renewer's log kept, certificates forced
// and the DNS provider function replaceable (nil: lego's registry).
func (h *harness) runWith(cfg *acme.Config, now time.Time, dnsp acme.DNSProviderFunc, force ...string) runLog {
	h.t.Helper()
	if dnsp == nil {
		dnsp = dns.NewDNSChallengeProviderByName
	}
	var logs syncBuffer
	r, err := acme.NewRenewer(cfg, acme.Options{
		Logger:      slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{h.t}, &logs), nil)),
		DNSProvider: dnsp,
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			h.rec.base = rt
			return h.rec
		},
		Now:   func() time.Time { return now },
		Force: force,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	sum, err := r.Run(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	var out bytes.Buffer
	sum.Write(&out)
	h.t.Logf("summary:\n%s", out.String())
	return runLog{sum: sum, log: logs.String(), out: out.String()}
}

// leafFile parses the first certificate of a PEM file.
func leafFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// snapshot maps every entry under dir to its content (files) or target
// (symlinks), to show that a failed run changed nothing.
func snapshot(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				m[p] = "-> " + target
				return err
			case d.IsDir():
				m[p] = "dir"
			default:
				data, err := os.ReadFile(p)
				m[p] = string(data)
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// sameSnapshot fails the test with the first difference.
func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if w, ok := after[p]; !ok {
			t.Fatalf("%s: %s disappeared", what, p)
		} else if w != v {
			t.Fatalf("%s: %s changed", what, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Fatalf("%s: %s appeared", what, p)
		}
	}
}
