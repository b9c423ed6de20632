package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Source serves the certificate of a bootstrapped directory to TLS servers
// and clients, and picks up the file another process (pki renew) or its own
// [Renewer] rewrote, without a restart. Handshakes check the files' change
// time at most once per second.
type Source struct {
	dir string
	now func() time.Time

	mu      sync.Mutex
	checked time.Time
	stamp   time.Time
	cert    *tls.Certificate
	roots   *x509.CertPool
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
	s.cert, s.roots, s.stamp = cert, newPool(b.Root), stamp
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
	return c
}

// ClientConfig returns a tls.Config that presents the current certificate
// and trusts only the pinned root.
func (s *Source) ClientConfig() *tls.Config {
	_, roots := s.current()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.Certificate(), nil
		},
	}
}

// RunRenewer keeps the directory fresh in the background with r (whose Dir
// must be the Source's) until ctx ends; the Source picks up each renewal.
func (s *Source) RunRenewer(ctx context.Context, r *Renewer) {
	r.Dir = s.dir
	go func() { _ = r.Run(ctx) }()
}
