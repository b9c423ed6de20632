package acme

import (
	"path/filepath"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := LoadState(path)
	if err != nil || len(s.Certificates) != 0 {
		t.Fatalf("missing state: %v, %v", s, err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cs := s.cert("www")
	cs.Failures, cs.NextAttempt, cs.LastError = 2, now, "boom"
	cs.ARI = &ARIState{CertID: "a.b", WindowStart: now, WindowEnd: now.Add(time.Hour), RenewAt: now, NextCheck: now}
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	g := got.Certificates["www"]
	if g.Failures != 2 || !g.NextAttempt.Equal(now) || g.ARI.CertID != "a.b" || !g.ARI.WindowEnd.Equal(now.Add(time.Hour)) {
		t.Fatalf("round trip: %+v", g)
	}
}

func TestParseStateRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"version":  `{"version":9,"certificates":{}}`,
		"unknown":  `{"version":1,"certificates":{},"extra":1}`,
		"null":     `{"version":1,"certificates":{"a":null}}`,
		"negative": `{"version":1,"certificates":{"a":{"failures":-1}}}`,
		"window":   `{"version":1,"certificates":{"a":{"ari":{"cert_id":"x","window_start":"2026-01-02T00:00:00Z","window_end":"2026-01-01T00:00:00Z","next_check":"2026-01-01T00:00:00Z"}}}}`,
		"trailing": `{"version":1,"certificates":{}} {}`,
		"garbage":  `not json`,
	} {
		if _, err := ParseState([]byte(doc)); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"certificates":{"www":{"ari":{"cert_id":"a.b","window_start":"2026-01-01T00:00:00Z","window_end":"2026-01-02T00:00:00Z","renew_at":"2026-01-01T12:00:00Z","next_check":"2026-01-01T06:00:00Z"},"failures":1,"next_attempt":"2026-01-01T01:00:00Z","last_error":"x"}}}`))
	f.Add([]byte(`{"version":1,"certificates":{"a":{"no_ari":true,"hook_pending":true}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1,"certificates":{"a":{"hook_pending":true,"deploy":{"cert":"ab","done":["h1","h1"]},"deployed":"cd","issued_by":{"cert":"ab","directory":"https://x/dir","account":"https://x/a/1"},"config_hash":"0011"}}}`))
	leaf := leafOfPair(f, selfSigned(f, time.Now(), time.Hour, "a.example"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseState(data)
		if err != nil {
			return
		}
		// Whatever parses must be safe for decide and the deploy
		// reconciliation, and must save.
		now := time.Now()
		for _, cs := range s.Certificates {
			c := &Certificate{Domains: []string{"a.example"}, KeyType: "ec256", DeployHooks: []string{"h1"}, directory: "https://x/dir", hash: "0011"}
			decide(now, c, nil, cs)
			decide(now, c, leaf, cs)
			if owed := reconcileDeploy(c, leaf, cs.clone(), true); owed {
				cc := cs.clone()
				reconcileDeploy(c, leaf, cc, true)
				if cc.Deploy == nil || cc.Deploy.Cert != certSum(leaf) {
					t.Fatalf("owed without a deploy record for the certificate: %+v", cc.Deploy)
				}
			}
		}
		if err := s.Save(filepath.Join(t.TempDir(), "s.json")); err != nil {
			t.Fatal(err)
		}
	})
}
