package acme

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
)

func leafOfPair(t testing.TB, p Pair) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(p.CertPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reconcileDeploy decides what hooks are owed for the certificate on disk
// from what the state file recorded; every case a crash or an older
// acme-renew can leave behind.
func TestReconcileDeploy(t *testing.T) {
	now := time.Now()
	a := leafOfPair(t, selfSigned(t, now, time.Hour, "x.example.com"))
	b := leafOfPair(t, selfSigned(t, now, time.Hour, "x.example.com"))
	hooks := &Certificate{DeployHooks: []string{"h1", "h2"}}
	none := &Certificate{}
	for _, tc := range []struct {
		name  string
		c     *Certificate
		leaf  *x509.Certificate
		cs    CertState
		known bool
		owed  bool
		done  int // hooks already done that stay recorded
	}{
		{"nothing on disk", hooks, nil, CertState{Deploy: &DeployState{Cert: certSum(b)}}, true, false, 0},
		{"deployed", hooks, a, CertState{Deployed: certSum(a)}, true, false, 0},
		{"killed after the switch, one hook done", hooks, b, CertState{Deployed: certSum(a), Deploy: &DeployState{Cert: certSum(b), Done: []string{"h1"}}}, true, true, 1},
		{"killed before the switch", hooks, a, CertState{Deployed: certSum(a), Deploy: &DeployState{Cert: certSum(b)}, HookPending: true}, true, false, 0},
		{"changed behind our back", hooks, b, CertState{Deployed: certSum(a)}, true, true, 0},
		{"older acme-renew, hooks done", hooks, a, CertState{LastSuccess: now}, true, false, 0},
		{"older acme-renew, hook pending", hooks, a, CertState{HookPending: true}, true, true, 0},
		{"state lost", hooks, a, CertState{}, false, true, 0},
		{"no hooks", none, b, CertState{Deployed: certSum(a)}, true, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := tc.cs
			owed := reconcileDeploy(tc.c, tc.leaf, &cs, tc.known)
			if owed != tc.owed || cs.HookPending != tc.owed {
				t.Fatalf("owed %v, pending %v; want %v", owed, cs.HookPending, tc.owed)
			}
			if owed && (cs.Deploy == nil || cs.Deploy.Cert != certSum(tc.leaf) || len(cs.Deploy.Done) != tc.done) {
				t.Fatalf("deploy record %+v", cs.Deploy)
			}
			if !owed && tc.leaf != nil && (cs.Deploy != nil || cs.Deployed != certSum(tc.leaf)) {
				t.Fatalf("nothing owed but deploy %+v, deployed %q", cs.Deploy, cs.Deployed)
			}
		})
	}
}

// A backoff holds only under the settings that earned it.
func TestBackoffEndsWhenConfigChanges(t *testing.T) {
	now := time.Now()
	c := &Certificate{hash: "h1"}
	cs := &CertState{Failures: 1, NextAttempt: now.Add(time.Hour), ConfigHash: "h1"}
	if !decide(now, c, nil, cs).BackingOff {
		t.Fatal("same settings: not backing off")
	}
	c.hash = "h2"
	if d := decide(now, c, nil, cs); d.BackingOff || !d.Due {
		t.Fatalf("changed settings: %+v", d)
	}
	cs.ConfigHash = "" // written by an older acme-renew: keep the backoff
	if !decide(now, c, nil, cs).BackingOff {
		t.Fatal("unknown settings: backoff dropped")
	}
}

// "replaces" only for the CA and account that issued the certificate,
// with a usable window from that CA.
func TestReplacesOnlyForItsCA(t *testing.T) {
	now := time.Now()
	leaf := leafOfPair(t, selfSigned(t, now, 90*24*time.Hour, "x.example.com"))
	c := &Certificate{Domains: []string{"x.example.com"}, KeyType: "ec256", directory: "https://ca-b/dir"}
	id := "aaaa.bbbb"
	good := func() *CertState {
		return &CertState{
			IssuedBy: &IssuedBy{Cert: certSum(leaf), Directory: "https://ca-b/dir", Account: "https://ca-b/acct/1"},
			ARI:      &ARIState{CertID: id, Directory: "https://ca-b/dir", RenewAt: now},
		}
	}
	r := &Renewer{}
	// The ARI id is computed from the leaf; align the fixture with it.
	if got := r.replaces(c, leaf, good(), "https://ca-b/acct/1"); got != "" {
		t.Fatalf("fixture id mismatch should give no replaces, got %q", got)
	}
	realID := ariID(t, leaf)
	mk := func(edit func(*CertState)) *CertState {
		cs := good()
		cs.ARI.CertID = realID
		edit(cs)
		return cs
	}
	if got := r.replaces(c, leaf, mk(func(*CertState) {}), "https://ca-b/acct/1"); got != realID {
		t.Fatalf("issued here with a window: replaces %q, want %q", got, realID)
	}
	for name, cs := range map[string]*CertState{
		"no issuer record":      mk(func(cs *CertState) { cs.IssuedBy = nil }),
		"issued by another CA":  mk(func(cs *CertState) { cs.IssuedBy.Directory = "https://ca-a/dir" }),
		"another account":       mk(func(cs *CertState) { cs.IssuedBy.Account = "https://ca-b/acct/2" }),
		"window from another":   mk(func(cs *CertState) { cs.ARI.Directory = "https://ca-a/dir" }),
		"no usable window":      mk(func(cs *CertState) { cs.ARI.RenewAt = time.Time{} }),
		"record of another one": mk(func(cs *CertState) { cs.IssuedBy.Cert = "00" }),
	} {
		if got := r.replaces(c, leaf, cs, "https://ca-b/acct/1"); got != "" {
			t.Errorf("%s: replaces %q", name, got)
		}
	}
}

func ariID(t *testing.T, leaf *x509.Certificate) string {
	t.Helper()
	id, err := certificate.MakeARICertID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
