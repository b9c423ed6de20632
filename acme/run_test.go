package acme

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
)

type refuseTransport struct{ n int }

func (t *refuseTransport) RoundTrip(*http.Request) (*http.Response, error) {
	t.n++
	return nil, http.ErrServerClosed
}

// A deploy hook that failed is retried by the next run, without the CA,
// and keeps failing the run until it succeeds.
func TestHookRetriedWithoutCA(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "hook-ok")
	doc := `
state_dir: ` + dir + `/state
accounts:
  ca: {directory: "https://127.0.0.1:1/dir"}
certificates:
  - name: www
    domains: [www.example.com]
    challenge: {http01: {port: 8402}}
    deploy_hooks: ["test -e ` + marker + `"]
`
	cfg, err := ParseConfig("acme.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pair := selfSigned(t, now.Add(-time.Hour), 90*24*time.Hour, "www.example.com")
	s := &store{out: cfg.Certificates[0].Output}
	if _, err := s.install(pair, now); err != nil {
		t.Fatal(err)
	}
	leaf, _ := leafOf(&cfg.Certificates[0].Output)
	id, _ := certificate.MakeARICertID(leaf)
	st, _ := LoadState("")
	st.Certificates["www"] = &CertState{HookPending: true, ARI: &ARIState{CertID: id, RenewAt: now.Add(30 * 24 * time.Hour), NextCheck: now.Add(6 * time.Hour)}}
	os.MkdirAll(cfg.StateDir, 0o700)
	if err := st.Save(cfg.StatePath()); err != nil {
		t.Fatal(err)
	}
	rt := &refuseTransport{}
	r, err := NewRenewer(cfg, Options{WrapTransport: func(http.RoundTripper) http.RoundTripper { return rt }})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Action{Failed, Failed, NotDue} {
		if i == 2 {
			os.WriteFile(marker, nil, 0o600)
		}
		sum, err := r.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := sum.Results[0]; got.Action != want {
			t.Fatalf("run %d: %+v, want %s", i, got, want)
		}
	}
	if rt.n != 0 {
		t.Fatalf("%d requests to the CA", rt.n)
	}
	st, _ = LoadState(cfg.StatePath())
	if st.Certificates["www"].HookPending {
		t.Fatal("hook still pending after it succeeded")
	}
	var out strings.Builder
	if err := List(&out, cfg, now); err != nil || !strings.Contains(out.String(), "before the CA's renewal window") {
		t.Fatalf("list: %v\n%s", err, out.String())
	}
}
