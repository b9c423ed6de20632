package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/pkg/config"
	"github.com/rampart-sec/rampart/pkg/pemcert"
)

// RevocationConfig is the crl: section of a daemon that speaks mTLS with
// CA-issued certificates (blocklistd's tls.crl, the agent's server.crl).
type RevocationConfig struct {
	// URL of the CA's CRL, https://ca.internal:9443/1.0/crl; empty: no
	// revocation check.
	URL string `yaml:"url"`
	// Refresh is how often it is fetched (default 15s).
	Refresh config.Duration `yaml:"refresh"`
	// MaxAge: every peer is refused once the newest good CRL was signed
	// longer ago than this (default 1h; the CA re-signs every 5m).
	MaxAge config.Duration `yaml:"max_age"`
	// Cache keeps the last good CRL across restarts (optional).
	Cache string `yaml:"cache"`
}

// Options turns the section into [RevocationOptions].
func (rc RevocationConfig) Options(log *slog.Logger, reg prometheus.Registerer) RevocationOptions {
	return RevocationOptions{URL: rc.URL, Refresh: time.Duration(rc.Refresh), MaxAge: time.Duration(rc.MaxAge),
		CacheFile: rc.Cache, Logger: log, Registerer: reg}
}

// Start checks tc's peers against the CRL when URL is set: the CRL must
// be signed by an intermediate in certFile (the chain pki bootstrap
// writes) or a root in caFile, chaining to a root in caFile. It fetches
// once now, then keeps refreshing until ctx ends, and sets
// tc.VerifyConnection. It returns nil, nil when URL is empty.
func (rc RevocationConfig) Start(ctx context.Context, tc *tls.Config, certFile, caFile string, log *slog.Logger, reg prometheus.Registerer) (*RevocationChecker, error) {
	if rc.URL == "" {
		return nil, nil
	}
	rootsPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("crl: %w", err)
	}
	roots, err := pemcert.Parse(rootsPEM)
	if err != nil {
		return nil, fmt.Errorf("crl: %s: %w", caFile, err)
	}
	chainPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("crl: %w", err)
	}
	chain, err := pemcert.Parse(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("crl: %s: %w", certFile, err)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	issuers := append(append([]*x509.Certificate(nil), chain[1:]...), roots...)
	o := rc.Options(log, reg)
	c, err := newRevocationChecker(func() (*x509.CertPool, []*x509.Certificate) { return pool, issuers }, o)
	if err != nil {
		return nil, err
	}
	if err := c.Refresh(ctx); err != nil {
		c.log.Warn("pki: first CRL fetch failed; peers are refused until one succeeds", "url", rc.URL, "err", err)
	}
	prev := tc.VerifyConnection
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		return c.VerifyConnection(cs)
	}
	go c.run(ctx, true)
	return c, nil
}

var errNoCRLURL = errors.New("crl: url is required")

// Validate checks the section (an empty URL with other keys set is a
// mistake: the check would silently be off).
func (rc RevocationConfig) Validate() error {
	if rc.URL == "" && (rc.Refresh != 0 || rc.MaxAge != 0 || rc.Cache != "") {
		return errNoCRLURL
	}
	if rc.Refresh < 0 || rc.MaxAge < 0 {
		return fmt.Errorf("crl: refresh %s and max_age %s must not be negative", rc.Refresh, rc.MaxAge)
	}
	return nil
}
