package acme

import (
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"

	"github.com/rampart-sec/rampart/pkg/config"
	"github.com/rampart-sec/rampart/pkg/pemcert"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	mk := func(issued time.Time, life time.Duration) *x509.Certificate {
		p := selfSigned(t, issued, life, "a.example.com")
		certs, err := pemcert.Parse(p.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		return certs[0]
	}
	fresh := mk(now.Add(-10*day), 90*day) // 80 days left
	old := mk(now.Add(-70*day), 90*day)   // 20 days left: past 2/3
	short := mk(now.Add(-4*day), 6*day)   // 2 of 6 days left: past 1/2
	shortOK := mk(now.Add(-2*day), 6*day) // 4 of 6 days left
	other := mk(now.Add(-10*day), 90*day) // another serial
	id := func(c *x509.Certificate) string { s, _ := certificate.MakeARICertID(c); return s }
	cfg := &Certificate{Domains: []string{"a.example.com"}, KeyType: "ec256"}
	cases := []struct {
		name    string
		leaf    *x509.Certificate
		cs      CertState
		cfg     *Certificate
		due     bool
		checkAR bool
		reason  string
	}{
		{name: "missing", leaf: nil, due: true, reason: "no certificate"},
		{name: "missing but backing off", leaf: nil, cs: CertState{Failures: 2, NextAttempt: now.Add(time.Hour)}, reason: "backing off"},
		{name: "backoff over", leaf: nil, cs: CertState{Failures: 2, NextAttempt: now.Add(-time.Minute)}, due: true},
		{name: "names changed", leaf: fresh, cfg: &Certificate{Domains: []string{"a.example.com", "b.example.com"}, KeyType: "ec256"}, due: true, reason: "names changed"},
		{name: "key type changed", leaf: fresh, cfg: &Certificate{Domains: []string{"a.example.com"}, KeyType: "rsa2048"}, due: true, reason: "key type"},
		{name: "no ARI yet: ask", leaf: fresh, checkAR: true},
		{name: "ARI for an older cert: ask", leaf: fresh, cs: CertState{ARI: &ARIState{CertID: id(other), RenewAt: now.Add(day), NextCheck: now.Add(time.Hour)}}, checkAR: true},
		{name: "ARI window ahead, within Retry-After", leaf: fresh, cs: CertState{ARI: &ARIState{CertID: id(fresh), RenewAt: now.Add(day), NextCheck: now.Add(time.Hour)}}, reason: "before the CA's renewal window"},
		{name: "ARI window ahead, Retry-After passed", leaf: fresh, cs: CertState{ARI: &ARIState{CertID: id(fresh), RenewAt: now.Add(day), NextCheck: now.Add(-time.Minute)}}, checkAR: true},
		{name: "ARI window reached", leaf: fresh, cs: CertState{ARI: &ARIState{CertID: id(fresh), RenewAt: now.Add(-time.Minute), NextCheck: now.Add(time.Hour)}}, due: true, reason: "ARI"},
		{name: "ARI says later even though lifetime rule says now", leaf: old, cs: CertState{ARI: &ARIState{CertID: id(old), RenewAt: now.Add(day), NextCheck: now.Add(time.Hour)}}},
		{name: "ARI without a window: lifetime rule", leaf: old, cs: CertState{ARI: &ARIState{CertID: id(old), NextCheck: now.Add(time.Hour)}}, due: true, reason: "of lifetime left"},
		{name: "no ARI at CA: lifetime, not due", leaf: fresh, cs: CertState{NoARI: true}, reason: "not due"},
		{name: "no ARI at CA: past 2/3", leaf: old, cs: CertState{NoARI: true}, due: true},
		{name: "short-lived past half", leaf: short, cs: CertState{NoARI: true}, due: true},
		{name: "short-lived before half", leaf: shortOK, cs: CertState{NoARI: true}},
		{name: "renew_before overrides", leaf: fresh, cs: CertState{NoARI: true}, cfg: &Certificate{Domains: []string{"a.example.com"}, KeyType: "ec256", RenewBefore: config.Duration(85 * day)}, due: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cc := cfg
			if c.cfg != nil {
				cc = c.cfg
			}
			d := decide(now, cc, c.leaf, &c.cs)
			if d.Due != c.due || d.CheckARI != c.checkAR || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("decide = %+v; want due=%v checkARI=%v reason~%q", d, c.due, c.checkAR, c.reason)
			}
			if !d.Due && !d.CheckARI && !d.Next.After(now) {
				t.Fatalf("not due but no future look: %+v", d)
			}
		})
	}
}

func TestARIFromResponse(t *testing.T) {
	now := time.Now().UTC()
	var r certificate.RenewalInfoResponse
	json.Unmarshal([]byte(`{"suggestedWindow":{"start":"2026-01-01T00:00:00Z","end":"2026-01-02T00:00:00Z"}}`), &r)
	r.RetryAfter = 10 * 24 * time.Hour // unreasonable: clamped
	a := ariFromResponse(now, "id", &r)
	if a.RenewAt.Before(a.WindowStart) || !a.RenewAt.Before(a.WindowEnd) {
		t.Fatalf("RenewAt %s outside window", a.RenewAt)
	}
	if a.NextCheck != now.Add(24*time.Hour) {
		t.Fatalf("Retry-After not clamped: %s", a.NextCheck.Sub(now))
	}
	r.SuggestedWindow.End = r.SuggestedWindow.Start.Add(-time.Hour) // backwards
	if a := ariFromResponse(now, "id", &r); !a.RenewAt.IsZero() {
		t.Fatal("a backwards window was used")
	}
}
