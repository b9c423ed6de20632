package blocklist_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/blocklist/store"
)

// serverPKI is a throwaway CA written by server.WriteDevCerts.
type serverPKI struct{ dir string }

func newServerPKI(t *testing.T) serverPKI {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := server.WriteDevCerts(dir, []string{"127.0.0.1", "localhost"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	return serverPKI{dir: dir}
}

func (p serverPKI) file(name string) string { return filepath.Join(p.dir, name) }

func (p serverPKI) clientTLS(t *testing.T, name string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.file(name+".pem"), p.file(name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: p.pool(t), Certificates: []tls.Certificate{cert}}
}

func (p serverPKI) pool(t *testing.T) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(p.file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(data)
	return pool
}

func (p serverPKI) client(t *testing.T, url, name string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{URL: url, TLS: p.clientTLS(t, name)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startServerOn runs a blocklistd in this process on st, on loopback with
// real mTLS, until the test ends. It returns its URL.
func startServerOn(t *testing.T, p serverPKI, st store.Store, cfg server.Config, name string) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testLogWriter{t, name}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, st, cfg, log, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	tc, err := server.TLSConfig(p.file("blocklistd.pem"), p.file("blocklistd-key.pem"), p.file("ca.pem"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Run(ctx) }()
	go func() { defer wg.Done(); server.Serve(ctx, ln, srv.Handler(), tc, log) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return "https://" + ln.Addr().String()
}

type testLogWriter struct {
	t    *testing.T
	name string
}

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, b)
	return len(b), nil
}

// serverAgent follows a blocklistd like blocklist-agent does, in memory.
type serverAgent struct {
	c       *client.Client
	version uint64
	set     map[netip.Prefix]bool
}

func (a *serverAgent) sync(t *testing.T, wait time.Duration) {
	t.Helper()
	u, err := a.c.Sync(context.Background(), a.version, wait)
	if err != nil {
		t.Fatal(err)
	}
	if u.Full || a.set == nil {
		a.set = map[netip.Prefix]bool{}
		for _, p := range u.Entries {
			a.set[p] = true
		}
	}
	for _, p := range u.Remove {
		delete(a.set, p)
	}
	for _, p := range u.Add {
		a.set[p] = true
	}
	a.version = u.Version
}

// syncUntil long-polls until cond holds, failing after 30s.
func (a *serverAgent) syncUntil(t *testing.T, what string, cond func(map[netip.Prefix]bool) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.sync(t, 2*time.Second)
		if cond(a.set) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 30s; agent holds %v", what, a.list())
		}
	}
}

func (a *serverAgent) list() []string {
	var out []string
	for p := range a.set {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}
