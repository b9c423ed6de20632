package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.step.sm/crypto/jose"
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
	// Everything that can fail after the CA signs is checked before: the
	// CA records the token as used when it signs, so a host that fails
	// afterwards has nothing written and a spent token.
	if err := preflight(info, outDir, opts); err != nil {
		return nil, fmt.Errorf("bootstrap: %w (nothing was sent to the CA; the token is still unused)", err)
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
	if err := c.checkAdvertised(ctx, token, info, opts.Lifetime); err != nil {
		return nil, fmt.Errorf("bootstrap: %w (the token was not sent; it is still unused)", err)
	}

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

// preflight checks what Bootstrap can know before it talks to the CA: the
// file options (owner, group, key mode), the requested lifetime, the
// token's names and roles, and that outDir can be written.
func preflight(info *TokenInfo, outDir string, opts BootstrapOptions) error {
	if _, _, err := opts.Files.resolve(); err != nil {
		return err
	}
	if opts.Lifetime < 0 {
		return fmt.Errorf("lifetime %s: must be positive", opts.Lifetime)
	}
	// opts.Names is left to the CA: it exists to prove the CA refuses
	// names the token was not minted for. The token's own names must be
	// names a certificate can carry (a token minted elsewhere, or by an
	// older pki token, may hold "bad name!").
	for _, n := range info.SANs {
		if role, ok := strings.CutPrefix(n, RolePrefix); ok && !roleRE.MatchString(role) {
			return fmt.Errorf("token role %q: not a role name", role)
		}
		if err := CheckSAN(n); err != nil {
			return fmt.Errorf("token name: %w", err)
		}
	}
	if outDir == "" {
		return errors.New("no output directory")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	f, err := os.CreateTemp(outDir, ".bootstrap-check-*")
	if err != nil {
		return fmt.Errorf("output directory %s is not writable: %w", outDir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// advertised is one provisioner as GET /1.0/provisioners shows it.
type advertised struct {
	Type   string           `json:"type"`
	Name   string           `json:"name"`
	Key    *jose.JSONWebKey `json:"key"`
	Claims *struct {
		Min     string `json:"minTLSCertDuration"`
		Max     string `json:"maxTLSCertDuration"`
		Default string `json:"defaultTLSCertDuration"`
	} `json:"claims"`
}

// checkAdvertised holds the token and the requested lifetime to what the
// CA publishes about the token's provisioner (unauthenticated, read over
// the pinned root): its public key must verify the token, and the
// lifetime must be within its limits. A CA that does not answer is left
// to judge for itself.
func (c *Client) checkAdvertised(ctx context.Context, token string, info *TokenInfo, lifetime time.Duration) error {
	var resp struct {
		Provisioners []advertised `json:"provisioners"`
	}
	if err := doJSON(ctx, c.hc, http.MethodGet, c.base.String()+"/1.0/provisioners?limit=100", nil, &resp, nil); err != nil {
		return nil
	}
	tok, err := jose.ParseSigned(strings.TrimSpace(token))
	if err != nil || len(tok.Headers) != 1 {
		return fmt.Errorf("token: not a signed JWT")
	}
	for _, p := range resp.Provisioners {
		if p.Type != "JWK" || p.Name != info.Provisioner || p.Key == nil || p.Key.KeyID != tok.Headers[0].KeyID {
			continue
		}
		var claims jose.Claims
		if err := tok.Claims(p.Key.Public(), &claims); err != nil {
			return fmt.Errorf("token signature does not verify with provisioner %q's key as the CA publishes it (altered token?)", p.Name)
		}
		if lifetime > 0 && p.Claims != nil {
			if min, err := time.ParseDuration(p.Claims.Min); err == nil && lifetime < min {
				return fmt.Errorf("lifetime %s: the CA issues certificates of %s to %s", lifetime, p.Claims.Min, p.Claims.Max)
			}
			if max, err := time.ParseDuration(p.Claims.Max); err == nil && lifetime > max {
				return fmt.Errorf("lifetime %s: the CA issues certificates of %s to %s", lifetime, p.Claims.Min, p.Claims.Max)
			}
		}
		return nil
	}
	return nil
}
