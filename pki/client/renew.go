package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
	"github.com/rampart-sec/rampart/pkg/hook"
	"github.com/rampart-sec/rampart/pkg/metrics"
)

// CAURLFile, inside a certificate directory, remembers the CA that issued
// the certificate so that `pki renew --dir DIR` needs no other argument.
const CAURLFile = "ca.url"

// ErrExpired reports a certificate past its NotAfter that the CA would not
// renew; the host needs a fresh token (`pki renew --token-file`).
var ErrExpired = errors.New("certificate expired and the CA refused to renew it")

// Renew renews the certificate in dir once over mTLS (or, if it already
// expired, with a renew token the CA accepts if its allowRenewalAfterExpiry
// claim is set and, for a Rampart CA, the certificate expired no longer ago
// than its leaf.renewal_after_expiry_max) and rewrites cert.pem atomically.
// The key stays the same. caURL may be empty to use the one recorded at bootstrap.
func Renew(ctx context.Context, dir, caURL string, files FileOptions) (*Bundle, error) {
	r := &Renewer{Dir: dir, CAURL: caURL, Files: files}
	return r.renew(ctx)
}

// Renewer keeps one certificate directory fresh. Run renews at about two
// thirds of the lifetime (minus up to 5% jitter so a fleet does not renew in
// lockstep), retries with exponential backoff, runs Hook only after a
// successful write, and exports the expiry.
type Renewer struct {
	Dir   string
	CAURL string // empty: read from Dir/ca.url
	Files FileOptions

	// Hook, if set, runs through /bin/sh after every successful renewal.
	Hook        string
	HookTimeout time.Duration

	// RecoveryTokenFile, if set, holds a fresh one-time token used to
	// bootstrap again when the CA refuses to renew the certificate (it
	// expired and the CA's allowRenewalAfterExpiry is off, or it expired
	// longer ago than the CA allows, or it was revoked).
	RecoveryTokenFile string

	// Textfile, if set, receives the metrics after every attempt in the
	// node_exporter textfile format.
	Textfile string

	Logger   *slog.Logger
	Registry *prometheus.Registry // nil: a private one

	// MinBackoff and MaxBackoff bound the retry delay; defaults 1s and 5m.
	MinBackoff, MaxBackoff time.Duration

	// Now is the clock; nil = time.Now. Tests move it forward.
	Now func() time.Time

	expiry   prometheus.Gauge
	renewals *prometheus.CounterVec
	last     prometheus.Gauge
}

func (r *Renewer) init() {
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.MinBackoff <= 0 {
		r.MinBackoff = time.Second
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 5 * time.Minute
	}
	if r.expiry != nil {
		return
	}
	if r.Registry == nil {
		r.Registry = prometheus.NewRegistry()
	}
	labels := prometheus.Labels{"dir": r.Dir}
	r.expiry = prometheus.NewGauge(prometheus.GaugeOpts{Name: "rampart_pki_certificate_expiry_timestamp_seconds", Help: "NotAfter of the certificate in the directory, Unix seconds.", ConstLabels: labels})
	r.last = prometheus.NewGauge(prometheus.GaugeOpts{Name: "rampart_pki_certificate_last_renewal_timestamp_seconds", Help: "When the certificate was last renewed, Unix seconds.", ConstLabels: labels})
	r.renewals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_pki_certificate_renewals_total", Help: "Renewal attempts by result (ok, error).", ConstLabels: labels}, []string{"result"})
	for _, c := range []prometheus.Collector{r.expiry, r.last, r.renewals} {
		if err := r.Registry.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				r.Logger.Warn("pki: register metric", "err", err)
			}
		}
	}
}

// RenewAt returns when the certificate should be renewed: two thirds into
// its lifetime, minus a jitter of up to 5% of the lifetime.
func RenewAt(leafNotBefore, leafNotAfter time.Time, jitter float64) time.Time {
	life := leafNotAfter.Sub(leafNotBefore)
	at := leafNotBefore.Add(life * 2 / 3)
	return at.Add(-time.Duration(jitter * 0.05 * float64(life)))
}

func (r *Renewer) caURL() (string, error) {
	if r.CAURL != "" {
		return r.CAURL, nil
	}
	b, err := os.ReadFile(filepath.Join(r.Dir, CAURLFile))
	if err != nil {
		return "", fmt.Errorf("no --ca-url and %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// RenewIfDue renews when the certificate is due (or always, with force)
// and runs the hook after a successful write. It reports whether it renewed.
func (r *Renewer) RenewIfDue(ctx context.Context, force bool) (bool, error) {
	r.init()
	b, err := LoadBundle(r.Dir)
	if err != nil {
		return false, err
	}
	r.expiry.Set(float64(b.Leaf().NotAfter.Unix()))
	if !force && r.Now().Before(RenewAt(b.Leaf().NotBefore, b.Leaf().NotAfter, 0)) {
		r.writeTextfile()
		return false, nil
	}
	_, err = r.renewAndHook(ctx)
	return err == nil, err
}

func (r *Renewer) renewAndHook(ctx context.Context) (*Bundle, error) {
	nb, err := r.renew(ctx)
	if err != nil {
		r.renewals.WithLabelValues("error").Inc()
		r.writeTextfile()
		return nil, err
	}
	r.renewals.WithLabelValues("ok").Inc()
	r.expiry.Set(float64(nb.Leaf().NotAfter.Unix()))
	r.last.Set(float64(r.Now().Unix()))
	r.writeTextfile()
	r.Logger.Info("pki: certificate renewed", "dir", r.Dir, "serial", nb.Leaf().SerialNumber.String(), "not_after", nb.Leaf().NotAfter.UTC())
	if r.Hook != "" {
		if _, err := hook.Run(ctx, r.Logger, hook.Hook{Command: r.Hook, Timeout: r.HookTimeout, Env: []string{"PKI_DIR=" + r.Dir}}); err != nil {
			return nb, fmt.Errorf("certificate renewed, but the reload hook failed: %w", err)
		}
	}
	return nb, nil
}

func (r *Renewer) writeTextfile() {
	if r.Textfile == "" {
		return
	}
	if err := metrics.WriteTextfile(r.Textfile, r.Registry); err != nil {
		r.Logger.Warn("pki: write metrics textfile", "path", r.Textfile, "err", err)
	}
}

func (r *Renewer) renew(ctx context.Context) (*Bundle, error) {
	r.init()
	b, err := LoadBundle(r.Dir)
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	caURL, err := r.caURL()
	if err != nil {
		return nil, fmt.Errorf("renew %s: %w", r.Dir, err)
	}
	pool := newPool(b.Root)
	c, err := New(caURL, pool)
	if err != nil {
		return nil, fmt.Errorf("renew %s: %w", r.Dir, err)
	}
	defer c.CloseIdleConnections()
	now := r.Now()
	chain, err := c.renew(ctx, b, now)
	if err != nil {
		var ae *APIError
		refused := errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500
		if now.After(b.Leaf().NotAfter) || (refused && r.RecoveryTokenFile != "") {
			return r.recover(ctx, caURL, b, now, err)
		}
		return nil, fmt.Errorf("renew %s (serial %s): %w", r.Dir, b.Leaf().SerialNumber, err)
	}
	if err := verifyChain(chain, b.Root, now); err != nil {
		return nil, fmt.Errorf("renew %s: CA answer: %w", r.Dir, err)
	}
	nb := &Bundle{Key: b.Key, Chain: chain, Root: b.Root}
	if err := writeBundle(r.Dir, nb, false, r.Files); err != nil {
		return nil, fmt.Errorf("renew %s: %w", r.Dir, err)
	}
	return nb, nil
}

// recover handles a certificate the CA will not renew: one that expired
// while the host slept or the CA was down (and the CA's
// allowRenewalAfterExpiry is off, or it expired longer ago than the CA
// allows), or one that was revoked. With a recovery
// token, minted by an operator on the CA, it joins again with a new key;
// without one it fails loudly.
func (r *Renewer) recover(ctx context.Context, caURL string, b *Bundle, now time.Time, cause error) (*Bundle, error) {
	var refused error
	if now.After(b.Leaf().NotAfter) {
		refused = fmt.Errorf("renew %s: certificate expired at %s: %w (%w)", r.Dir, b.Leaf().NotAfter.UTC().Format(time.RFC3339), ErrExpired, cause)
	} else {
		refused = fmt.Errorf("renew %s (serial %s): %w", r.Dir, b.Leaf().SerialNumber, cause)
	}
	if r.RecoveryTokenFile == "" {
		return nil, fmt.Errorf("%w; mint a fresh token on the CA (pki token %s) and run pki renew --token-file FILE", refused, b.Leaf().Subject.CommonName)
	}
	tok, err := os.ReadFile(r.RecoveryTokenFile)
	if err != nil {
		return nil, fmt.Errorf("%w; recovery token: %w", refused, err)
	}
	r.Logger.Warn("pki: the CA refused renewal, joining again with the recovery token", "dir", r.Dir, "token_file", r.RecoveryTokenFile, "cause", cause)
	nb, err := Bootstrap(ctx, caURL, Fingerprint(b.Root), string(tok), r.Dir, BootstrapOptions{Files: r.Files, Now: r.Now})
	if err != nil {
		return nil, fmt.Errorf("%w; recovery: %w", refused, err)
	}
	// A token is single use: remove it so nobody mistakes it for a spare.
	_ = os.Remove(r.RecoveryTokenFile)
	return nb, nil
}

// Run renews whenever due until ctx is done. Failures are retried with
// exponential backoff and full jitter; Run returns only when ctx ends.
func (r *Renewer) Run(ctx context.Context) error {
	r.init()
	backoff := r.MinBackoff
	for {
		var wait time.Duration
		b, err := LoadBundle(r.Dir)
		if err != nil {
			r.Logger.Error("pki: load certificate", "dir", r.Dir, "err", err)
			wait, backoff = r.nextBackoff(backoff)
		} else {
			r.expiry.Set(float64(b.Leaf().NotAfter.Unix()))
			at := RenewAt(b.Leaf().NotBefore, b.Leaf().NotAfter, rand.Float64())
			wait = at.Sub(r.Now())
			if wait <= 0 {
				nb, err := r.renewAndHook(ctx)
				if err != nil && nb != nil {
					r.Logger.Error("pki: reload hook failed; the new certificate is on disk", "dir", r.Dir, "err", err)
					err = nil
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					r.Logger.Error("pki: renewal failed, will retry", "dir", r.Dir, "retry_in", backoff, "err", err)
					wait, backoff = r.nextBackoff(backoff)
				} else {
					backoff = r.MinBackoff
					continue
				}
			} else {
				r.writeTextfile()
				r.Logger.Info("pki: next renewal", "dir", r.Dir, "at", at.UTC().Format(time.RFC3339), "not_after", b.Leaf().NotAfter.UTC().Format(time.RFC3339))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (r *Renewer) nextBackoff(cur time.Duration) (wait, next time.Duration) {
	wait = cur/2 + time.Duration(rand.Int64N(int64(cur/2)+1))
	next = min(cur*2, r.MaxBackoff)
	return wait, next
}

// writeCAURL records caURL in dir.
func writeCAURL(dir, caURL string, files FileOptions) error {
	_, certOpts, err := files.resolve()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, CAURLFile), []byte(caURL+"\n"), certOpts)
}
