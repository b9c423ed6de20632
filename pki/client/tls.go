package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Source serves the certificate of a bootstrapped directory to TLS servers
// and clients, and picks up the file another process (pki renew) or its own
// [Renewer] rewrote, without a restart. Handshakes check the files' change
// time at most once per second.
type Source struct {
	dir string
	now func() time.Time

	revocation atomic.Pointer[RevocationChecker]

	mu      sync.Mutex
	checked time.Time
	stamp   time.Time
	cert    *tls.Certificate
	roots   *x509.CertPool
	root    *x509.Certificate
}

// NewSource loads dir and fails if it does not hold a usable bundle.
func NewSource(dir string) (*Source, error) {
	s := &Source{dir: dir, now: time.Now}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Source) stampOf() (time.Time, error) {
	var latest time.Time
	for _, f := range []string{KeyFile, CertFile, RootFile} {
		fi, err := os.Stat(filepath.Join(s.dir, f))
		if err != nil {
			return latest, err
		}
		if fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	}
	return latest, nil
}

func (s *Source) reload() error {
	stamp, err := s.stampOf()
	if err != nil {
		return fmt.Errorf("tls source %s: %w", s.dir, err)
	}
	b, err := LoadBundle(s.dir)
	if err != nil {
		return fmt.Errorf("tls source: %w", err)
	}
	cert := &tls.Certificate{PrivateKey: b.Key, Leaf: b.Leaf()}
	for _, c := range b.Chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	s.mu.Lock()
	s.cert, s.roots, s.root, s.stamp = cert, newPool(b.Root), b.Root, stamp
	s.mu.Unlock()
	return nil
}

func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); now.Sub(s.checked) >= time.Second {
		s.checked = now
		if stamp, err := s.stampOf(); err == nil && !stamp.Equal(s.stamp) {
			s.mu.Unlock()
			_ = s.reload() // keep serving the old certificate if the new files are half-written or bad
			s.mu.Lock()
		}
	}
	return s.cert, s.roots
}

// Certificate returns the current certificate.
func (s *Source) Certificate() *tls.Certificate { c, _ := s.current(); return c }

// Roots returns the pool holding the pinned root.
func (s *Source) Roots() *x509.CertPool { _, r := s.current(); return r }

// ServerConfig returns a tls.Config whose GetCertificate serves the
// current certificate and, once [Source.CheckRevocation] was called (before
// or after), refuses peers the CA revoked. It
// current certificate and, when requireClientCert is set, demands a client
// certificate issued by the same CA (mTLS). Authorize roles on the verified
// peer with [Roles]. The client CA pool is the root pinned at bootstrap; the
// caller may set further fields (NextProtos, MinVersion) on the result.
func (s *Source) ServerConfig(requireClientCert bool) *tls.Config {
	_, roots := s.current()
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.Certificate(), nil
		},
	}
	if requireClientCert {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = roots
	}
	c.VerifyConnection = s.verifyRevocation
	return c
}

// ClientConfig returns a tls.Config that presents the current certificate
// and trusts only the pinned root; with [Source.CheckRevocation] it also
// refuses a server whose certificate the CA revoked.
func (s *Source) ClientConfig() *tls.Config {
	_, roots := s.current()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.Certificate(), nil
		},
		VerifyConnection: s.verifyRevocation,
	}
}

// RunRenewer keeps the directory fresh in the background with r (whose Dir
// must be the Source's) until ctx ends; the Source picks up each renewal.
func (s *Source) RunRenewer(ctx context.Context, r *Renewer) {
	r.Dir = s.dir
	go func() { _ = r.Run(ctx) }()
}

// CheckRevocation makes every configuration from [Source.ServerConfig] and
// [Source.ClientConfig] (made before or after) refuse a peer certificate
// the CA revoked, and every peer once no fresh CRL is at hand (see
// [RevocationOptions]). The CRL is fetched once now (a failure is logged:
// peers are refused until a fetch succeeds, or a CacheFile holds a good
// one) and then every Refresh until ctx ends. o.URL defaults to the CA URL
// in the directory's ca.url plus /1.0/crl.
func (s *Source) CheckRevocation(ctx context.Context, o RevocationOptions) (*RevocationChecker, error) {
	if o.URL == "" {
		b, err := os.ReadFile(filepath.Join(s.dir, CAURLFile))
		if err != nil {
			return nil, fmt.Errorf("revocation: no CRL URL given and %w", err)
		}
		o.URL = strings.TrimSuffix(strings.TrimSpace(string(b)), "/") + CRLPath
	}
	rc, err := newRevocationChecker(s.trust, o)
	if err != nil {
		return nil, err
	}
	if err := rc.Refresh(ctx); err != nil {
		rc.log.Warn("pki: first CRL fetch failed; peers are refused until one succeeds", "url", o.URL, "err", err)
	}
	s.revocation.Store(rc)
	go rc.run(ctx, true)
	return rc, nil
}

// trust is what the CRL's signature is checked against: the pinned root,
// and the intermediates in the current chain (which must chain to it).
func (s *Source) trust() (*x509.CertPool, []*x509.Certificate) {
	cert, roots := s.current()
	var issuers []*x509.Certificate
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			issuers = append(issuers, c)
		}
	}
	s.mu.Lock()
	issuers = append(issuers, s.root)
	s.mu.Unlock()
	return roots, issuers
}

func (s *Source) verifyRevocation(cs tls.ConnectionState) error {
	if rc := s.revocation.Load(); rc != nil {
		return rc.VerifyConnection(cs)
	}
	return nil
}
