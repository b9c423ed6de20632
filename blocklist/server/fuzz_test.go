package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"github.com/rampart-sec/rampart/blocklist/internal/wire"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
)

// FuzzHandlers throws arbitrary bodies at the report and admin endpoints:
// the answer is never a 5xx or a panic, and whatever the store holds
// afterwards is still a valid blocklist.
func FuzzHandlers(f *testing.F) {
	for _, seed := range []string{
		`{"addr":"203.0.113.9","reason":"sshd","count":5,"window":"10m"}`,
		`{"addr":"2001:db8::1","count":1}`,
		`{"addr":"::ffff:192.0.2.1","count":3}`,
		`{"addr":"0.0.0.0","count":1}`,
		`{"addr":"fe80::1%eth0","count":1}`,
		`{"prefix":"0.0.0.0/0"}`,
		`{"prefix":"10.0.0.0/8","ttl":"7d","reason":"x"}`,
		`{"prefix":"192.0.2.1"}`,
		`{"addr":`, `[]`, `null`, `{"count":1e309}`, "\x00\xff",
	} {
		for path := range 4 {
			f.Add(uint8(path), []byte(seed))
		}
	}
	ca, err := devcert.NewCA("fuzz CA", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	certPEM, _, err := ca.Issue(devcert.Leaf{Name: "fuzzer", Roles: []string{RoleReporter, RoleAdmin, RoleAgent}})
	if err != nil {
		f.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		f.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	srv, err := New(context.Background(), st, Config{Policy: Policy{Threshold: 1}, ReportRate: 1e9, ReportBurst: 1 << 30}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	paths := []string{wire.PathReport, wire.PathBan, wire.PathUnban, wire.PathAllow}
	f.Fuzz(func(t *testing.T, path uint8, body []byte) {
		req := httptest.NewRequest(http.MethodPost, paths[int(path)%len(paths)], strings.NewReader(string(body)))
		req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert, ca.Cert}}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", req.URL.Path, body, rec.Code, rec.Body)
		}
		srv.eng.mu.RLock()
		defer srv.eng.mu.RUnlock()
		for p := range srv.eng.published.all() {
			if !p.IsValid() || p != p.Masked() || srv.tooBroad(p) {
				t.Fatalf("published %v after %q", p, body)
			}
		}
	})
}
