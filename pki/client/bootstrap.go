package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// BootstrapOptions tune [Bootstrap]. The zero value is what `pki bootstrap`
// does by default.
type BootstrapOptions struct {
	Files FileOptions
	// Lifetime asks the CA for this certificate lifetime; 0 = the CA's default.
	Lifetime time.Duration
	// Names, if set, replaces the names taken from the token. The CA refuses
	// names the token was not minted for; this exists so that tests and
	// tools can prove it.
	Names []string
	// Now is the clock used to pre-check token expiry; nil = time.Now.
	Now func() time.Time
}

// Bootstrap joins a host: it pins the CA root by fingerprint, generates an
// ECDSA P-256 key locally (the key never leaves the host), asks the CA to
// sign a request for the names in token, and writes key.pem, cert.pem and
// root.pem into outDir atomically.
func Bootstrap(ctx context.Context, caURL, fingerprint, token, outDir string, opts BootstrapOptions) (*Bundle, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	info, err := ParseToken(token)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if !info.Expiry.IsZero() && now().After(info.Expiry.Add(time.Minute)) {
		return nil, fmt.Errorf("bootstrap: token for %q expired at %s: %w", info.Subject, info.Expiry.UTC().Format(time.RFC3339), ErrTokenExpired)
	}
	if info.RootSHA != "" && normalizeFingerprint(info.RootSHA) != normalizeFingerprint(fingerprint) {
		return nil, fmt.Errorf("bootstrap: token was minted for root %s, --fingerprint is %s: %w", info.RootSHA, fingerprint, ErrFingerprint)
	}
	root, err := FetchRoot(ctx, caURL, fingerprint)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	c, err := New(caURL, pool)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	defer c.CloseIdleConnections()

	names := info.SANs
	if len(opts.Names) > 0 {
		names = opts.Names
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: generate key: %w", err)
	}
	csr, err := NewCSR(key, info.Subject, names)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	chain, err := c.Sign(ctx, csr, token, opts.Lifetime)
	if err != nil {
		return nil, fmt.Errorf("bootstrap %q: %w", info.Subject, err)
	}
	if err := verifyChain(chain, root, now()); err != nil {
		return nil, fmt.Errorf("bootstrap: CA answer: %w", err)
	}
	b := &Bundle{Key: key, Chain: chain, Root: root}
	if err := writeBundle(outDir, b, true, opts.Files); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := writeCAURL(outDir, caURL, opts.Files); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return b, nil
}

// NewCSR builds a certificate request for cn whose SANs are names, sorted
// into DNS names, IP addresses, e-mail addresses and URIs.
func NewCSR(key crypto.Signer, cn string, names []string) (*x509.CertificateRequest, error) {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	for _, n := range names {
		switch {
		case net.ParseIP(n) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(n))
		case strings.ContainsRune(n, '@'):
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, n)
		default:
			if u, err := url.Parse(n); err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "") {
				tmpl.URIs = append(tmpl.URIs, u)
				continue
			}
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("certificate request for %q: %w", cn, err)
	}
	return x509.ParseCertificateRequest(der)
}

func verifyChain(chain []*x509.Certificate, root *x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("empty certificate chain")
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

func newPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
