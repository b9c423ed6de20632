package pki_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
	"github.com/rampart-sec/rampart/pki/server"
	"github.com/rampart-sec/rampart/test/testenv"
)

// syncBuffer collects log lines from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testCA is a CA created by ca.Init in a temporary directory and served
// in-process on loopback.
type testCA struct {
	t    testing.TB
	dir  string
	cfg  *ca.Config
	srv  *server.Server
	reg  *prometheus.Registry
	logs *syncBuffer
	prov *client.Provisioner
	fp   string
	url  string

	stop func()
}

type store struct {
	name string
	dsn  func(t testing.TB) string // "" = bbolt
}

// stores lists the stores every end-to-end test runs against.
var stores = []store{
	{"bbolt", func(testing.TB) string { return "" }},
	{"postgresql", func(t testing.TB) string {
		testenv.RequireRoot(t)
		return testenv.StartPostgres(t).DSN
	}},
}

// newCA initializes a CA; dsn "" means bbolt. The name policy allows
// *.rampart.test, localhost and 127.0.0.0/8; the audit log is a file.
func newCA(t testing.TB, dsn, database string) *testCA {
	t.Helper()
	dir := t.TempDir()
	port := testenv.FreePort(t)
	res, err := ca.Init(dir, ca.InitOptions{
		Name:     "Test",
		Listen:   fmt.Sprintf("127.0.0.1:%d", port),
		DNSNames: []string{"localhost", "127.0.0.1"},
		StoreDSN: dsn,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ca.LoadConfig(res.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if database != "" {
		cfg.Store.Database = database
	}
	cfg.Policy.DNS = []string{"*.rampart.test", "localhost"}
	cfg.Policy.IP = []string{"127.0.0.0/8"}
	cfg.AuditLog = "audit.log"
	prov, err := cfg.LoadProvisioner(res.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCA{t: t, dir: dir, cfg: cfg, logs: &syncBuffer{}, prov: prov, fp: res.Fingerprint, url: cfg.URL}
	c.start()
	t.Cleanup(func() { c.shutdown() })
	return c
}

// replica serves the same CA (same keys, same store) on another port.
func (c *testCA) replica() *testCA {
	t := c.t
	cfg := *c.cfg
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	_, port, _ := net.SplitHostPort(cfg.Listen)
	cfg.URL = "https://localhost:" + port
	r := &testCA{t: t, dir: c.dir, cfg: &cfg, logs: &syncBuffer{}, prov: c.prov, fp: c.fp, url: cfg.URL}
	r.start()
	t.Cleanup(func() { r.shutdown() })
	return r
}

func (c *testCA) start() {
	t := c.t
	t.Helper()
	c.reg = prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(c.logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, c.cfg, logger, c.reg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		cancel()
		srv.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	c.srv = srv
	c.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

func (c *testCA) shutdown() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

func (c *testCA) restart() {
	c.shutdown()
	c.start()
}

func (c *testCA) token(subject string, sans []string, roles ...string) string {
	c.t.Helper()
	tok, err := c.prov.Token(c.url, client.TokenRequest{Subject: subject, SANs: sans, Roles: roles, TTL: 10 * time.Minute})
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

func (c *testCA) client() *client.Client {
	c.t.Helper()
	cl, err := client.New(c.url, poolOf(c.srv.Root()))
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func (c *testCA) auditLog() string {
	return readFile(c.t, filepath.Join(c.dir, "audit.log"))
}

// waitLog waits for substr in the CA's log: the log line follows the
// response by a moment.
func (c *testCA) waitLog(substr string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(c.logs.String(), substr) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %v, got success", target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("want error %v, got %v", target, err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func (c *testCA) client2TLS() *tls.Config {
	return &tls.Config{RootCAs: poolOf(c.srv.Root())}
}

func pemCSR(csr *x509.CertificateRequest) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})
}
