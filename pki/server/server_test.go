package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
)

func TestExplain(t *testing.T) {
	for _, tc := range []struct{ internal, want string }{
		{"authority.Authorize: authority.authorizeSign: token already used", "token already used"},
		{"jwk.authorizeToken; invalid jwk claims: go-jose/go-jose/jwt: validation failed, token is expired (exp)", "token expired"},
		{"certificate request does not contain the valid DNS names - got [b], want [a]", "token not valid for the requested names: certificate request does not contain the valid DNS names - got [b], want [a]"},
		{"authority.authorizeRenew: certificate has been revoked", "certificate revoked"},
		{"jwk.authorizeToken; error parsing jwk token", "malformed token"},
		{"provisioner not found or invalid audience (x)", "token was minted for another CA URL (aud)"},
		{"cahandler.Renew: authority.authorizeRenew: The request lacked necessary authorization to be completed: certificate expired on 2026-11-21 05:02:53 +0000 UTC", "certificate expired and renewal after expiry is not allowed"},
		{"go-jose/go-jose: error in cryptographic primitive", "token signature invalid"},
	} {
		if got := explain(errors.New(tc.internal), nil); !strings.HasPrefix(got, tc.want) {
			t.Errorf("explain(%q) = %q, want prefix %q", tc.internal, got, tc.want)
		}
	}
	if got := explain(nil, []byte(`{"status":400,"message":"as step said"}`)); got != "as step said" {
		t.Errorf("fallback %q", got)
	}
}

func TestRefusalStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		err    string
		want   int
	}{
		// step-ca answers 500 when a renew token is the requester's fault.
		{500, "go-jose/go-jose: error in cryptographic primitive", 401},
		{500, "error validating renew token: invalid audience claim (aud)", 401},
		{500, "database Update error: connection refused", 500},
		{401, "token already used", 401},
		{500, "", 500},
	} {
		var err error
		if tc.err != "" {
			err = errors.New(tc.err)
		}
		if got := refusalStatus(tc.status, err); got != tc.want {
			t.Errorf("refusalStatus(%d, %q) = %d, want %d", tc.status, tc.err, got, tc.want)
		}
	}
}

func TestRouteOf(t *testing.T) {
	for in, want := range map[string]string{
		"/1.0/sign": "/sign", "/sign": "/sign", "/root/abc": "/root/{sha}", "/1.0/ssh/sign": "/ssh/sign",
		"/provisioners/x/encrypted-key": "/provisioners", "/../etc/passwd": "other", "/acme/x": "other",
	} {
		if got := routeOf(in); got != want {
			t.Errorf("routeOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNamePolicy(t *testing.T) {
	var cfg ca.Config
	cfg.Policy.DNS = []string{"*.rampart.test", "localhost"}
	cfg.Policy.IP = []string{"127.0.0.0/8", "10.1.0.0/16"}
	cfg.Roles = []string{"agent", "admin"}
	p, err := newNamePolicy(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{[]string{"a.rampart.test"}, true},
		{[]string{"localhost", "127.0.0.1"}, true},
		{[]string{"b.rampart.test", "10.1.2.3", "urn:rampart:role:agent"}, true},
		{[]string{"a.b.rampart.test"}, false}, // step: a wildcard matches one label
		{[]string{"rampart.test.evil.com"}, false},
		{[]string{"a.rampart.test", "10.2.0.1"}, false},
		{[]string{"a.rampart.test", "urn:rampart:role:root"}, false},
		{[]string{"a.rampart.test", "spiffe://x/y"}, false},
		{[]string{"a.rampart.test", "me@rampart.test"}, false},
	} {
		csr, err := client.NewCSR(key, "x", tc.names)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.check(csr); (err == nil) != tc.ok {
			t.Errorf("names %v: err %v, want ok=%v", tc.names, err, tc.ok)
		}
	}
	if err := p.checkSSHHost([]string{"h.rampart.test", "127.0.0.2"}); err != nil {
		t.Error(err)
	}
	if err := p.checkSSHHost([]string{"h.example.com"}); err == nil {
		t.Error("ssh host outside policy accepted")
	}
}

func FuzzPrecheck(f *testing.F) {
	var cfg ca.Config
	cfg.Policy.DNS = []string{"*.rampart.test"}
	cfg.Roles = []string{"agent"}
	p, err := newNamePolicy(&cfg)
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{policy: p}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := client.NewCSR(key, "x", []string{"x.rampart.test"})
	good, _ := json.Marshal(map[string]string{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})), "ott": "a.b.c"})
	f.Add("/sign", good)
	f.Add("/sign", []byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add("/ssh/sign", []byte(`{"ott":"e30.eyJzdGVwIjp7InNzaCI6eyJjZXJ0VHlwZSI6Imhvc3QiLCJwcmluY2lwYWxzIjpbImEiXX19fQ.x"}`))
	f.Add("/renew", []byte(`{}`))
	f.Add("/renew", []byte(`e30.e30.x`))
	f.Fuzz(func(t *testing.T, route string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/1.0/renew", nil)
		r.Header.Set("Authorization", "Bearer "+string(body))
		_ = s.precheck(r, route, body)
	})
}

// TestPrecheckRenew: a renewal is held to today's name policy, whether the
// old certificate comes over mTLS or in a renew token's x5cInsecure header.
func TestPrecheckRenew(t *testing.T) {
	var cfg ca.Config
	cfg.Policy.DNS = []string{"*.rampart.test"}
	cfg.Roles = []string{"agent"}
	p, err := newNamePolicy(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{policy: p}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certFor := func(name string) *x509.Certificate {
		return testCert(t, key, name, time.Now().Add(-24*time.Hour))
	}
	tokenFor := func(c *x509.Certificate) string { return renewToken(t, key, c) }
	for _, tc := range []struct {
		name    string
		byToken bool
		ok      bool
	}{
		{"web.rampart.test", false, true},
		{"web.rampart.test", true, true},
		{"web.example.com", false, false},
		{"web.example.com", true, false},
	} {
		c := certFor(tc.name)
		r := httptest.NewRequest(http.MethodPost, "/1.0/renew", nil)
		if tc.byToken {
			r.Header.Set("Authorization", "Bearer "+tokenFor(c))
		} else {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
		}
		err := s.precheck(r, "/renew", []byte(`{}`))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errPolicy)) {
			t.Errorf("%s (token %v): err %v, want ok=%v", tc.name, tc.byToken, err, tc.ok)
		}
	}
	if err := s.precheck(httptest.NewRequest(http.MethodPost, "/1.0/renew", nil), "/renew", nil); err != nil {
		t.Errorf("renewal without certificate or token: %v (step-ca answers it)", err)
	}
}

// testCert is a self-signed certificate for name that expired at notAfter.
func testCert(t *testing.T, key *ecdsa.PrivateKey, name string, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notAfter.Add(-24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// renewToken is step's x5cInsecure renew token carrying c, signed by key.
func renewToken(t *testing.T, key *ecdsa.PrivateKey, c *x509.Certificate) string {
	t.Helper()
	opts := new(jose.SignerOptions).WithType("JWT").WithHeader(jose.HeaderKey(jose.X5cInsecureKey), []string{base64.StdEncoding.EncodeToString(c.Raw)})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jose.Signed(signer).Claims(jose.Claims{Subject: c.Subject.CommonName}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestPrecheckRenewalAge: a certificate that expired longer ago than
// leaf.renewal_after_expiry_max is refused before step-ca sees it, whether
// it comes over mTLS or in a renew token, and however the token is placed in
// the Authorization header (step-ca takes whatever follows the first
// "Bearer "); with renewal after expiry off, step-ca decides alone.
func TestPrecheckRenewalAge(t *testing.T) {
	p, err := newNamePolicy(&ca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
	s := &Server{policy: p, renewalAfterExpiryMax: 30 * day, now: func() time.Time { return now }}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	recent := testCert(t, key, "web1.rampart.test", now.Add(-26*time.Hour))
	edge := testCert(t, key, "edge.rampart.test", now.Add(-30*day))
	old := testCert(t, key, "hermit.rampart.test", now.Add(-365*day-2*time.Hour))
	for _, tc := range []struct {
		name   string
		cert   *x509.Certificate
		header string // "" = mTLS; otherwise the Authorization header, %s = token
		ok     bool
	}{
		{"recent-token", recent, "Bearer %s", true},
		{"recent-mtls", recent, "", true},
		{"at-the-limit", edge, "Bearer %s", true},
		{"old-token", old, "Bearer %s", false},
		{"old-mtls", old, "", false},
		// step-ca's getPeerCertificate splits on the first "Bearer ".
		{"old-token-after-other-scheme", old, "Basic Bearer %s", false},
		{"old-token-glued", old, "xBearer %s", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/1.0/renew", nil)
		if tc.header == "" {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tc.cert}}
		} else {
			r.Header.Set("Authorization", strings.Replace(tc.header, "%s", renewToken(t, key, tc.cert), 1))
		}
		err := s.precheck(r, "/renew", []byte(`{}`))
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var e *errExpiredTooLong
		if !errors.As(err, &e) {
			t.Errorf("%s: err %v, want the age refusal", tc.name, err)
			continue
		}
		for _, want := range []string{
			"renewal of serial 7: certificate expired too long ago",
			"it expired at " + tc.cert.NotAfter.UTC().Format(time.RFC3339) + " (365d2h ago)",
			"at most 30d after they expire (leaf.renewal_after_expiry_max)",
			"pki token " + tc.cert.Subject.CommonName,
			"pki renew --token-file FILE",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: message %q lacks %q", tc.name, err, want)
			}
		}
	}
	// Off: 0, and step-ca refuses every expired certificate itself.
	s.renewalAfterExpiryMax = 0
	r := httptest.NewRequest(http.MethodPost, "/1.0/renew", nil)
	r.Header.Set("Authorization", "Bearer "+renewToken(t, key, old))
	if err := s.precheck(r, "/renew", nil); err != nil {
		t.Errorf("renewal after expiry off: %v, want step-ca to answer", err)
	}
}

func TestDays(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90 * time.Second:               "1m30s",
		26*time.Hour + time.Minute:     "1d2h",
		30 * 24 * time.Hour:            "30d0h",
		366*24*time.Hour + 3*time.Hour: "366d3h",
	} {
		if got := days(d); got != want {
			t.Errorf("days(%s) = %q, want %q", d, got, want)
		}
	}
}
