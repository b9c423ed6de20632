package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"
)

func TestRenewAt(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		life   time.Duration
		jitter float64
		want   time.Duration // after nb
	}{
		{24 * time.Hour, 0, 16 * time.Hour},
		{24 * time.Hour, 1, 16*time.Hour - 72*time.Minute},
		{6 * time.Minute, 0, 4 * time.Minute},
		{6 * time.Minute, 0.5, 4*time.Minute - 9*time.Second},
	} {
		if got := RenewAt(nb, nb.Add(tc.life), tc.jitter).Sub(nb); got != tc.want {
			t.Errorf("RenewAt(life %s, jitter %v) = nb+%s, want nb+%s", tc.life, tc.jitter, got, tc.want)
		}
	}
}

func TestNewCSR(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := NewCSR(key, "web1", []string{"web1.internal", "10.0.0.1", "::1", "ops@example.com", "urn:rampart:role:agent", "spiffe://x/y"})
	if err != nil {
		t.Fatal(err)
	}
	if len(csr.DNSNames) != 1 || len(csr.IPAddresses) != 2 || len(csr.EmailAddresses) != 1 || len(csr.URIs) != 2 {
		t.Fatalf("dns %v ip %v email %v uri %v", csr.DNSNames, csr.IPAddresses, csr.EmailAddresses, csr.URIs)
	}
	if csr.Subject.CommonName != "web1" {
		t.Errorf("CN %q", csr.Subject.CommonName)
	}
}

func TestFileOptionsRefuseWorldReadableKey(t *testing.T) {
	for _, tc := range []struct {
		mode uint32
		ok   bool
	}{{0, true}, {0o600, true}, {0o640, true}, {0o644, false}, {0o606, false}} {
		_, _, err := FileOptions{KeyMode: fsMode(tc.mode)}.resolve()
		if (err == nil) != tc.ok {
			t.Errorf("key mode %#o: err %v, want ok=%v", tc.mode, err, tc.ok)
		}
	}
}

func TestAPIErrorUnwrap(t *testing.T) {
	for _, tc := range []struct {
		status int
		msg    string
		want   error
	}{
		{401, "token already used: a one-time token works once", ErrTokenUsed},
		{401, "token expired: mint a new one", ErrTokenExpired},
		{403, "token not valid for the requested names: ...", ErrTokenWrongName},
		{401, "certificate revoked: renewal refused", ErrRevoked},
		{401, "The request lacked necessary authorization", ErrUnauthorized},
		{500, "boom", nil},
		// A renewal refused because the certificate expired is not an
		// expired token: pki's wording, then step-ca's own.
		{401, "certificate expired and renewal after expiry is not allowed: join again with a fresh token", ErrExpired},
		{401, "The request lacked necessary authorization to be completed: certificate expired on 2026-11-21 05:02:53 +0000 UTC", ErrExpired},
		// pki's refusal of a certificate that expired longer ago than
		// leaf.renewal_after_expiry_max (the wording is pki/server's).
		{403, "renewal of serial 42: certificate expired too long ago: it expired at 2025-11-21T05:02:53Z (366d2h ago) and this CA renews certificates at most 30d after they expire (leaf.renewal_after_expiry_max); to recover, mint a fresh token on the CA (pki token web1) and run pki renew --token-file FILE", ErrExpired},
	} {
		err := error(&APIError{Status: tc.status, Message: tc.msg, Path: "/1.0/sign"})
		if tc.want == nil {
			if errors.Unwrap(err) != nil {
				t.Errorf("%q: unexpected sentinel %v", tc.msg, errors.Unwrap(err))
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%d %q: not %v", tc.status, tc.msg, tc.want)
		}
		if tc.want == ErrExpired && errors.Is(err, ErrTokenExpired) {
			t.Errorf("%q: reported as an expired token", tc.msg)
		}
	}
	_ = http.StatusOK
}

func testProvisioner(t testing.TB) *Provisioner {
	jwk, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "kid1", 0)
	if err != nil {
		t.Fatal(err)
	}
	return &Provisioner{Name: "rampart", Key: jwk, RootSHA: strings.Repeat("ab", 32)}
}

func TestTokenRoundTrip(t *testing.T) {
	p := testProvisioner(t)
	tok, err := p.Token("https://ca:9443", TokenRequest{Subject: "agent1", SANs: []string{"agent1.internal"}, Roles: []string{"agent", "reporter"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"agent1.internal", "urn:rampart:role:agent", "urn:rampart:role:reporter"}
	if strings.Join(info.SANs, ",") != strings.Join(want, ",") {
		t.Errorf("sans %v, want %v", info.SANs, want)
	}
	if info.Subject != "agent1" || info.Provisioner != "rampart" || info.Audience[0] != "https://ca:9443/1.0/sign" || info.ID == "" {
		t.Errorf("claims %+v", info)
	}
	if _, err := p.Token("https://ca", TokenRequest{Subject: "x", Roles: []string{"a:b"}}); err == nil {
		t.Error("role with a colon accepted")
	}
}

func FuzzParseToken(f *testing.F) {
	p := testProvisioner(f)
	tok, _ := p.Token("https://ca:9443", TokenRequest{Subject: "a"})
	f.Add(tok)
	f.Add("a.b.c")
	f.Add("")
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		info, err := ParseToken(s)
		if err == nil && info == nil {
			t.Fatal("nil info without error")
		}
	})
}

func fsMode(m uint32) fs.FileMode { return fs.FileMode(m) }
