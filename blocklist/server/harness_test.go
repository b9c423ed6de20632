package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type harness struct {
	t     testing.TB
	ca    *devcert.CA
	srv   *Server
	url   string
	logs  *syncBuffer
	clock *clock
	db    string
	stop  func()
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	ca, err := devcert.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ca: ca, logs: &syncBuffer{}, clock: &clock{t: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)},
		db: filepath.Join(t.TempDir(), "blocklistd.db")}
	h.start(cfg)
	return h
}

func (h *harness) start(cfg Config) {
	t := h.t
	st, err := boltstore.Open(h.db)
	if err != nil {
		t.Fatal(err)
	}
	h.startWith(st, cfg)
}

func (h *harness) startWith(st store.Store, cfg Config) {
	t := h.t
	if cfg.Now == nil {
		cfg.Now = h.clock.now
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, st, cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := h.ca.TLSCert(devcert.Leaf{Name: "blocklistd", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: h.ca.Pool()}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Run(ctx) }()
	go func() { defer wg.Done(); Serve(ctx, ln, srv.Handler(), tc, log) }()
	h.srv = srv
	h.url = "https://" + ln.Addr().String()
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		wg.Wait()
		st.Close()
	}
	t.Cleanup(h.stop)
}

func (h *harness) client(name string, roles ...string) *client.Client {
	h.t.Helper()
	cert, err := h.ca.TLSCert(devcert.Leaf{Name: name, Roles: roles})
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := client.New(client.Config{URL: h.url, TLS: &tls.Config{RootCAs: h.ca.Pool(), Certificates: []tls.Certificate{cert}}})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// agentView follows the server like an agent and returns the set it holds.
type agentView struct {
	c       *client.Client
	version uint64
	set     map[netip.Prefix]bool
}

func (a *agentView) sync(t *testing.T, wait time.Duration) client.Update {
	t.Helper()
	u, err := a.c.Sync(context.Background(), a.version, wait)
	if err != nil {
		t.Fatal(err)
	}
	if u.Full {
		a.set = map[netip.Prefix]bool{}
		for _, p := range u.Entries {
			a.set[p] = true
		}
	} else {
		for _, p := range u.Remove {
			delete(a.set, p)
		}
		for _, p := range u.Add {
			a.set[p] = true
		}
	}
	a.version = u.Version
	return u
}

func (a *agentView) list() []string {
	var out []string
	for p := range a.set {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
