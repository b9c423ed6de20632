package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type crlPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
}

func mustCert(t testing.TB, tmpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCRLPKI(t testing.TB, name string) *crlPKI {
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	ca := func(cn string, serial int64) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	}
	p := &crlPKI{rootKey: rk, interKey: ik}
	p.root = mustCert(t, ca(name+" Root CA", 1), ca(name+" Root CA", 1), &rk.PublicKey, rk)
	p.inter = mustCert(t, ca(name+" Intermediate CA", 2), p.root, &ik.PublicKey, rk)
	return p
}

func (p *crlPKI) leaf(t testing.TB, serial int64) *x509.Certificate {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return mustCert(t, &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "h"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}, p.inter, &k.PublicKey, p.interKey)
}

func (p *crlPKI) crl(t testing.TB, number int64, thisUpdate time.Time, revoked []int64) []byte {
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(number),
		ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(24 * time.Hour), RevokedCertificateEntries: entries}, p.inter, p.interKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// crlServer serves whatever CRL it was last given, with an ETag, or fails.
type crlServer struct {
	mu   sync.Mutex
	der  []byte
	etag string
	down bool
}

func (s *crlServer) set(der []byte, etag string) {
	s.mu.Lock()
	s.der, s.etag = der, etag
	s.mu.Unlock()
}
func (s *crlServer) setDown(d bool) { s.mu.Lock(); s.down = d; s.mu.Unlock() }

func (s *crlServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down || s.der == nil {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("ETag", s.etag)
	if r.Header.Get("If-None-Match") == s.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(s.der)
}

func newChecker(t *testing.T, p *crlPKI, srv *httptest.Server, o RevocationOptions) *RevocationChecker {
	t.Helper()
	o.URL, o.HTTPClient = srv.URL+"/1.0/crl", srv.Client()
	rc, err := NewRevocationChecker(newPool(p.root), []*x509.Certificate{p.inter, p.root}, o)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestRevocationCheckerSequence runs a seeded random sequence of CA
// events (revocations, re-signing, outages, a replayed older CRL, a CRL
// from an impostor CA) and checks after each refresh that the checker
// refuses exactly the serials of the newest genuine CRL it could fetch:
// nothing is ever un-revoked, an outage keeps the last good list.
func TestRevocationCheckerSequence(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 3))
	p := newCRLPKI(t, "Test")
	impostor := newCRLPKI(t, "Test") // same names, other keys
	cs := &crlServer{}
	srv := httptest.NewTLSServer(cs)
	defer srv.Close()
	rc := newChecker(t, p, srv, RevocationOptions{MaxAge: time.Hour})

	const n = 20
	leaves := make([]*x509.Certificate, n)
	for i := range leaves {
		leaves[i] = p.leaf(t, int64(1000+i))
	}
	if err := rc.Check(leaves[0]); !errors.Is(err, ErrCRLStale) {
		t.Fatalf("before any CRL: %v, want ErrCRLStale", err)
	}

	inForce := map[int64]bool{} // the reference: what the newest good CRL revokes
	var published map[int64]bool
	var history [][]byte
	number := int64(0)
	clock := time.Now().Truncate(time.Second)
	for step := range 60 {
		clock = clock.Add(time.Second)
		switch ev := rng.IntN(10); {
		case ev < 5 || published == nil: // revoke some (maybe none) and re-sign
			next := map[int64]bool{}
			for s := range published {
				next[s] = true
			}
			for range rng.IntN(3) {
				next[int64(1000+rng.IntN(n))] = true
			}
			number++
			var serials []int64
			for s := range next {
				serials = append(serials, s)
			}
			der := p.crl(t, number, clock, serials)
			history = append(history, der)
			cs.set(der, big.NewInt(number).String())
			cs.setDown(false)
			published, inForce = next, next
		case ev < 7:
			cs.setDown(true)
		case ev < 9 && len(history) > 1: // replay an older genuine CRL
			cs.set(history[rng.IntN(len(history)-1)], "old")
			cs.setDown(false)
		default: // an impostor's CRL revoking nothing
			cs.set(impostor.crl(t, number+100, clock, nil), "impostor")
			cs.setDown(false)
		}
		_ = rc.Refresh(context.Background())
		for i, l := range leaves {
			err := rc.Check(l)
			want := inForce[int64(1000+i)]
			if want != errors.Is(err, ErrPeerRevoked) || (!want && err != nil) {
				t.Fatalf("step %d: serial %d: check %v, want revoked=%v", step, 1000+i, err, want)
			}
		}
	}
}

// TestRevocationCheckerFreshness: conditional GET, max age (fail closed),
// nextUpdate, the cache file, and a leaf of another issuer.
func TestRevocationCheckerFreshness(t *testing.T) {
	p := newCRLPKI(t, "Test")
	cs := &crlServer{}
	srv := httptest.NewTLSServer(cs)
	defer srv.Close()
	cache := filepath.Join(t.TempDir(), "crl.der")
	rc := newChecker(t, p, srv, RevocationOptions{MaxAge: 10 * time.Minute, CacheFile: cache})
	now := time.Now()
	cs.set(p.crl(t, 1, now.Add(-time.Minute), []int64{7}), "1")
	ctx := context.Background()
	if err := rc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(rc.fetches.WithLabelValues("not_modified")); got != 1 {
		t.Errorf("second fetch of an unchanged CRL: %v not_modified, want 1", got)
	}
	good, revoked := p.leaf(t, 8), p.leaf(t, 7)
	if err := rc.Check(good); err != nil {
		t.Fatal(err)
	}
	if err := rc.Check(revoked); !errors.Is(err, ErrPeerRevoked) {
		t.Fatalf("revoked serial: %v", err)
	}
	// The CA goes away: the last good CRL holds until max_age, then
	// every peer is refused.
	cs.setDown(true)
	rc.now = func() time.Time { return now.Add(5 * time.Minute) }
	if err := rc.Refresh(ctx); err == nil {
		t.Fatal("refresh against a down CA succeeded")
	}
	if err := rc.Check(good); err != nil {
		t.Fatalf("within max_age: %v", err)
	}
	rc.now = func() time.Time { return now.Add(10 * time.Minute) }
	if err := rc.Check(good); !errors.Is(err, ErrCRLStale) {
		t.Fatalf("past max_age: %v, want ErrCRLStale", err)
	}
	if age, _ := rc.Age(); age < 10*time.Minute {
		t.Errorf("age %s", age)
	}
	// A fresh CRL puts things right.
	cs.setDown(false)
	cs.set(p.crl(t, 2, now.Add(9*time.Minute), []int64{7}), "2")
	if err := rc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rc.Check(good); err != nil {
		t.Fatalf("after a fresh CRL: %v", err)
	}
	// Past nextUpdate even a young CRL is stale.
	rc.opts.MaxAge = 1000 * time.Hour
	rc.now = func() time.Time { return now.Add(25 * time.Hour) }
	if err := rc.Check(good); !errors.Is(err, ErrCRLStale) {
		t.Fatalf("past nextUpdate: %v, want ErrCRLStale", err)
	}
	rc.now = time.Now
	// A leaf of another issuer is not covered by this CRL.
	other := newCRLPKI(t, "Other")
	if err := rc.Check(other.leaf(t, 8)); !errors.Is(err, ErrCRLStale) {
		t.Fatalf("leaf of another issuer: %v", err)
	}
	// A restarted checker starts from the cache file, before any fetch.
	cs.setDown(true)
	rc2 := newChecker(t, p, srv, RevocationOptions{MaxAge: time.Hour, CacheFile: cache})
	if err := rc2.Check(revoked); !errors.Is(err, ErrPeerRevoked) {
		t.Fatalf("from the cache file: %v", err)
	}
	if err := rc2.Check(good); err != nil {
		t.Fatalf("from the cache file: %v", err)
	}
}

// FuzzRevocationInstall: whatever bytes arrive as "the CRL", the checker
// installs only a CRL whose signed part is one the CA signed; anything
// else is refused and leaves the CRL in force unchanged.
func FuzzRevocationInstall(f *testing.F) {
	p := newCRLPKI(f, "Test")
	impostor := newCRLPKI(f, "Test")
	now := time.Now().Truncate(time.Second)
	genuine := p.crl(f, 5, now, []int64{7, 9})
	parsed, err := x509.ParseRevocationList(genuine)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine)
	f.Add(impostor.crl(f, 6, now, nil))
	f.Add(genuine[:len(genuine)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		rc, err := NewRevocationChecker(newPool(p.root), []*x509.Certificate{p.inter, p.root}, RevocationOptions{URL: "https://ca.invalid/1.0/crl"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.install(genuine, ""); err != nil {
			t.Fatal(err)
		}
		changed, err := rc.install(der, "")
		rc.mu.RLock()
		inForce := rc.crl
		rc.mu.RUnlock()
		if err != nil || !changed {
			if !bytes.Equal(inForce.RawTBSRevocationList, parsed.RawTBSRevocationList) {
				t.Fatalf("a refused or unchanged CRL replaced the one in force")
			}
			return
		}
		if !bytes.Equal(inForce.RawTBSRevocationList, parsed.RawTBSRevocationList) {
			t.Fatalf("installed a CRL whose signed content the CA never signed")
		}
	})
}

// BenchmarkRevocationCheck: the cost a handshake pays, against a CRL of
// 10,000 revoked serials.
func BenchmarkRevocationCheck(b *testing.B) {
	p := newCRLPKI(b, "Test")
	serials := make([]int64, 10000)
	for i := range serials {
		serials[i] = int64(100000 + i)
	}
	rc, err := NewRevocationChecker(newPool(p.root), []*x509.Certificate{p.inter, p.root}, RevocationOptions{URL: "https://ca.invalid/1.0/crl"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rc.install(p.crl(b, 1, time.Now(), serials), ""); err != nil {
		b.Fatal(err)
	}
	leaf := p.leaf(b, 7)
	b.ResetTimer()
	for b.Loop() {
		if err := rc.Check(leaf); err != nil {
			b.Fatal(err)
		}
	}
}
