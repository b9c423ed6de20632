package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// Sentinel errors of the revocation check; the handshake fails with them
// wrapped, naming the certificate.
var (
	// ErrPeerRevoked: the peer's serial is on the CA's CRL.
	ErrPeerRevoked = errors.New("peer certificate revoked")
	// ErrCRLStale: no CRL was ever fetched, or the last good one is older
	// than RevocationOptions.MaxAge (or past its nextUpdate). Every peer
	// is refused until a fresh one arrives: fail closed.
	ErrCRLStale = errors.New("no fresh CRL")
)

// CRLPath is where pki serve publishes its CRL, under the CA URL.
const CRLPath = "/1.0/crl"

// RevocationOptions configures a [RevocationChecker]. Zero values are the
// defaults.
type RevocationOptions struct {
	// URL of the CRL; default the CA URL in the directory's ca.url plus
	// /1.0/crl (Source) — required for [NewRevocationChecker].
	URL string
	// Refresh is how often the CRL is fetched (conditional GET): default
	// 15s, so a revocation takes effect within Refresh plus the CA's own
	// regeneration (immediate on revoke).
	Refresh time.Duration
	// MaxAge: once the newest good CRL was signed longer ago than this
	// (its thisUpdate; the CA re-signs every crl.renew_period, 5m by
	// default), every peer is refused. Default 1h. Until then a CRL that
	// cannot be fetched leaves the last good one in force.
	MaxAge time.Duration
	// CacheFile keeps the last good CRL (DER) across restarts; it is
	// verified again when loaded. Empty: memory only.
	CacheFile string
	// HTTPClient fetches the CRL; default one trusting only the roots.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Registerer receives rampart_pki_crl_* metrics; nil: none.
	Registerer prometheus.Registerer
}

// RevocationChecker refuses peers whose certificate the CA revoked. It
// keeps the CA's CRL fresh in the background ([RevocationChecker.Run]),
// verifies each one's signature against an issuer that chains to the
// pinned root, never goes back to an older CRL, and checks handshakes
// against the last good one ([RevocationChecker.VerifyConnection]).
type RevocationChecker struct {
	opts  RevocationOptions
	trust func() (*x509.CertPool, []*x509.Certificate)
	hc    *http.Client
	log   *slog.Logger
	now   func() time.Time

	mu      sync.RWMutex
	crl     *x509.RevocationList
	revoked map[string]time.Time // serial (decimal) -> revocation time
	etag    string

	fetches *prometheus.CounterVec
	refused *prometheus.CounterVec
}

// NewRevocationChecker checks peers against the CRL at o.URL, signed by
// one of issuers (the intermediate, or the root itself) that verifies
// against roots. Call Run (or Refresh) to fetch it: until a CRL is in
// hand every peer is refused.
func NewRevocationChecker(roots *x509.CertPool, issuers []*x509.Certificate, o RevocationOptions) (*RevocationChecker, error) {
	return newRevocationChecker(func() (*x509.CertPool, []*x509.Certificate) { return roots, issuers }, o)
}

func newRevocationChecker(trust func() (*x509.CertPool, []*x509.Certificate), o RevocationOptions) (*RevocationChecker, error) {
	if o.URL == "" {
		return nil, errors.New("revocation: no CRL URL")
	}
	if o.Refresh <= 0 {
		o.Refresh = 15 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = time.Hour
	}
	c := &RevocationChecker{opts: o, trust: trust, hc: o.HTTPClient, log: o.Logger, now: time.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.hc == nil {
		roots, _ := trust()
		c.hc = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				Proxy:           http.ProxyFromEnvironment,
				TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
			},
		}
	}
	c.fetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_pki_crl_fetches_total",
		Help: "CRL fetches by result: updated, not_modified (304), unchanged, error.",
	}, []string{"result"})
	c.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_pki_crl_refusals_total",
		Help: "Peers refused by the revocation check, by reason: revoked, stale (no fresh CRL), issuer (no CRL for its issuer).",
	}, []string{"reason"})
	if reg := o.Registerer; reg != nil {
		age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rampart_pki_crl_age_seconds",
			Help: "Age of the CRL in force (now minus its thisUpdate); -1 before the first one. Peers are refused once it passes max_age.",
		}, func() float64 {
			if a, ok := c.Age(); ok {
				return a.Seconds()
			}
			return -1
		})
		for _, col := range []prometheus.Collector{c.fetches, c.refused, age} {
			_ = reg.Register(col)
		}
	}
	if o.CacheFile != "" {
		if der, err := os.ReadFile(o.CacheFile); err == nil {
			if _, err := c.install(der, ""); err != nil {
				c.log.Warn("pki: cached CRL ignored", "file", o.CacheFile, "err", err)
			}
		}
	}
	return c, nil
}

// Age is how long ago the CRL in force was signed; false before the first.
func (c *RevocationChecker) Age() (time.Duration, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.crl == nil {
		return 0, false
	}
	return c.now().Sub(c.crl.ThisUpdate), true
}

// Run refreshes the CRL every Refresh (with up to 10 % jitter) until ctx
// ends. A failed fetch is logged and leaves the last good CRL in force.
func (c *RevocationChecker) Run(ctx context.Context) { c.run(ctx, false) }

func (c *RevocationChecker) run(ctx context.Context, wait bool) {
	for {
		if wait {
			wait = false
		} else if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("pki: CRL refresh failed; the last good CRL stays in force", "url", c.opts.URL, "err", err)
		}
		d := c.opts.Refresh - time.Duration(rand.Int64N(int64(c.opts.Refresh)/10+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// Refresh fetches the CRL once (If-None-Match the one in force).
func (c *RevocationChecker) Refresh(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.opts.URL, nil)
	if err != nil {
		return err
	}
	c.mu.RLock()
	if c.etag != "" {
		req.Header.Set("If-None-Match", c.etag)
	}
	c.mu.RUnlock()
	req.Header.Set("User-Agent", "rampart-pki")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.fetches.WithLabelValues("error").Inc()
		return fmt.Errorf("fetch CRL: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		c.fetches.WithLabelValues("not_modified").Inc()
		return nil
	case http.StatusOK:
	default:
		c.fetches.WithLabelValues("error").Inc()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("fetch CRL %s: %s: %s", c.opts.URL, resp.Status, bytes.TrimSpace(b))
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		c.fetches.WithLabelValues("error").Inc()
		return fmt.Errorf("fetch CRL %s: %w", c.opts.URL, err)
	}
	changed, err := c.install(der, resp.Header.Get("ETag"))
	if err != nil {
		c.fetches.WithLabelValues("error").Inc()
		return fmt.Errorf("CRL from %s: %w", c.opts.URL, err)
	}
	if !changed {
		c.fetches.WithLabelValues("unchanged").Inc()
		return nil
	}
	c.fetches.WithLabelValues("updated").Inc()
	if c.opts.CacheFile != "" {
		if err := atomicfile.WriteFile(c.opts.CacheFile, der, atomicfile.Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
			c.log.Warn("pki: keep CRL", "file", c.opts.CacheFile, "err", err)
		}
	}
	return nil
}

// install verifies der and makes it the CRL in force unless it is older
// than the one already there (a replayed CRL must not un-revoke anything).
func (c *RevocationChecker) install(der []byte, etag string) (bool, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return false, fmt.Errorf("parse: %w", err)
	}
	if err := c.verifySignature(crl); err != nil {
		return false, err
	}
	revoked := make(map[string]time.Time, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		revoked[e.SerialNumber.String()] = e.RevocationTime
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.crl; old != nil {
		if crl.ThisUpdate.Before(old.ThisUpdate) || (old.Number != nil && crl.Number != nil && crl.Number.Cmp(old.Number) < 0) {
			return false, fmt.Errorf("CRL number %v of %s is older than the one in force (number %v of %s): refused",
				crl.Number, crl.ThisUpdate.UTC().Format(time.RFC3339), old.Number, old.ThisUpdate.UTC().Format(time.RFC3339))
		}
		if bytes.Equal(old.Raw, crl.Raw) {
			c.etag = etag
			return false, nil
		}
	}
	c.crl, c.revoked, c.etag = crl, revoked, etag
	return true, nil
}

func (c *RevocationChecker) verifySignature(crl *x509.RevocationList) error {
	roots, issuers := c.trust()
	var errs []error
	for _, iss := range issuers {
		if !bytes.Equal(iss.RawSubject, crl.RawIssuer) {
			continue
		}
		if _, err := iss.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: c.now()}); err != nil {
			errs = append(errs, fmt.Errorf("issuer %q does not chain to the pinned root: %w", iss.Subject, err))
			continue
		}
		if err := crl.CheckSignatureFrom(iss); err != nil {
			errs = append(errs, fmt.Errorf("signature by %q: %w", iss.Subject, err))
			continue
		}
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("CRL issuer %q is none of the CA certificates pinned here", crl.Issuer)
	}
	return errors.Join(errs...)
}

// Check refuses leaf if the CRL in force revokes it, or if no CRL from
// its issuer is fresh enough to say it does not.
func (c *RevocationChecker) Check(leaf *x509.Certificate) error {
	c.mu.RLock()
	crl, revoked := c.crl, c.revoked
	c.mu.RUnlock()
	now := c.now()
	switch {
	case crl == nil:
		c.refused.WithLabelValues("stale").Inc()
		return fmt.Errorf("certificate %s (serial %s): %w: no CRL fetched yet from %s", leaf.Subject.CommonName, leaf.SerialNumber, ErrCRLStale, c.opts.URL)
	case now.Sub(crl.ThisUpdate) > c.opts.MaxAge:
		c.refused.WithLabelValues("stale").Inc()
		return fmt.Errorf("certificate %s (serial %s): %w: the last good CRL was signed at %s, more than max_age %s ago",
			leaf.Subject.CommonName, leaf.SerialNumber, ErrCRLStale, crl.ThisUpdate.UTC().Format(time.RFC3339), c.opts.MaxAge)
	case !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate):
		c.refused.WithLabelValues("stale").Inc()
		return fmt.Errorf("certificate %s (serial %s): %w: the last good CRL expired at %s (nextUpdate)",
			leaf.Subject.CommonName, leaf.SerialNumber, ErrCRLStale, crl.NextUpdate.UTC().Format(time.RFC3339))
	case !bytes.Equal(leaf.RawIssuer, crl.RawIssuer):
		c.refused.WithLabelValues("issuer").Inc()
		return fmt.Errorf("certificate %s (serial %s): %w: it was issued by %q, the CRL by %q",
			leaf.Subject.CommonName, leaf.SerialNumber, ErrCRLStale, leaf.Issuer, crl.Issuer)
	}
	if at, ok := revoked[leaf.SerialNumber.String()]; ok {
		c.refused.WithLabelValues("revoked").Inc()
		return fmt.Errorf("certificate %s (serial %s): %w at %s", leaf.Subject.CommonName, leaf.SerialNumber, ErrPeerRevoked, at.UTC().Format(time.RFC3339))
	}
	return nil
}

// VerifyConnection is a tls.Config.VerifyConnection that checks the
// verified peer leaf; a connection without a peer certificate passes (the
// config's ClientAuth decides whether one is required).
func (c *RevocationChecker) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	err := c.Check(cs.PeerCertificates[0])
	if err != nil {
		c.log.Warn("pki: peer refused", "err", err)
	}
	return err
}
