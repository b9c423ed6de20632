package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/certificate"
)

// Decision is whether one certificate is due, decided without the network
// unless CheckARI says the CA's renewal information must be fetched first.
type Decision struct {
	Due      bool
	CheckARI bool      // ask the CA's renewalInfo, then decide again
	Reason   string    // in words, for the summary and logs
	Next     time.Time // when to look again (zero when Due or CheckARI)
	// BackingOff: earlier attempts failed and their backoff has not ended.
	BackingOff bool
}

// backingOff reports whether cs's failures still hold c back. A backoff
// earned under other settings (ConfigHash) does not: the operator fixed
// the config, the next run tries at once.
func backingOff(now time.Time, c *Certificate, cs *CertState) bool {
	if cs.Failures == 0 || !now.Before(cs.NextAttempt) {
		return false
	}
	return cs.ConfigHash == "" || c.hash == "" || cs.ConfigHash == c.hash
}

// certSum is the SHA-256 of a certificate, hex: how state names it.
func certSum(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// Backoff after failure n (1-based): 30m, 1h, 2h, ... capped at 24h.
func backoff(n int) time.Duration {
	d := 30 * time.Minute
	for i := 1; i < n && d < 24*time.Hour; i++ {
		d *= 2
	}
	return min(d, 24*time.Hour)
}

// decide applies, in order: backoff after failures, a missing or
// mismatched certificate, the CA's ARI window (fetched at most once per
// Retry-After), and otherwise the lifetime rule: renew when a third of the
// lifetime remains, or half for certificates shorter than ten days.
func decide(now time.Time, c *Certificate, leaf *x509.Certificate, cs *CertState) Decision {
	if backingOff(now, c, cs) {
		return Decision{BackingOff: true, Reason: fmt.Sprintf("backing off after %d failure(s) until %s", cs.Failures, cs.NextAttempt.UTC().Format(time.RFC3339)), Next: cs.NextAttempt}
	}
	if leaf == nil {
		return Decision{Due: true, Reason: "no certificate on disk"}
	}
	if why := mismatch(c, leaf); why != "" {
		return Decision{Due: true, Reason: why}
	}
	if ib := cs.IssuedBy; ib != nil && ib.Cert == certSum(leaf) && c.directory != "" && ib.Directory != c.directory {
		return Decision{Due: true, Reason: fmt.Sprintf("issued by another CA (%s); the account now uses %s", ib.Directory, c.directory)}
	}
	if !now.Before(leaf.NotAfter) {
		return Decision{Due: true, Reason: "expired"}
	}
	if id, err := certificate.MakeARICertID(leaf); err == nil && !cs.NoARI {
		a := cs.ARI
		fresh := a != nil && a.CertID == id && (a.Directory == "" || c.directory == "" || a.Directory == c.directory)
		usable := fresh && !a.RenewAt.IsZero() && a.RenewAt.Before(leaf.NotAfter)
		switch {
		case usable && !now.Before(a.RenewAt):
			return Decision{Due: true, Reason: "inside the CA's renewal window (ARI)"}
		case !fresh || !now.Before(a.NextCheck):
			return Decision{CheckARI: true, Reason: "asking the CA for its renewal window"}
		case usable:
			return Decision{Reason: "before the CA's renewal window (ARI)", Next: earliest(a.RenewAt, a.NextCheck)}
		}
		// A fresh answer without a usable window: the lifetime rule applies.
	}
	at := lifetimeRenewAt(c, leaf)
	if !now.Before(at) {
		return Decision{Due: true, Reason: fmt.Sprintf("%s of lifetime left", leaf.NotAfter.Sub(now).Round(time.Minute))}
	}
	next := at
	if a := cs.ARI; !cs.NoARI && a != nil && a.NextCheck.Before(next) {
		next = a.NextCheck
	}
	return Decision{Reason: "not due", Next: next}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// lifetimeRenewAt is when the lifetime rule makes a certificate due.
func lifetimeRenewAt(c *Certificate, leaf *x509.Certificate) time.Time {
	if c.RenewBefore > 0 {
		return leaf.NotAfter.Add(-time.Duration(c.RenewBefore))
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	left := life / 3
	if life < 10*24*time.Hour {
		left = life / 2
	}
	return leaf.NotAfter.Add(-left)
}

// mismatch says why the certificate on disk no longer matches the config.
func mismatch(c *Certificate, leaf *x509.Certificate) string {
	have := dedup(leaf.DNSNames)
	want := dedup(c.Domains)
	if !slices.Equal(have, want) {
		return fmt.Sprintf("names changed (on disk: %s)", strings.Join(have, ", "))
	}
	if kt := keyTypeOf(leaf); kt != "" {
		if want, _ := parseKeyType(c.KeyType); string(want) != kt {
			return "key type changed"
		}
	}
	return ""
}

func keyTypeOf(leaf *x509.Certificate) string {
	switch k := leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "P256"
		case elliptic.P384():
			return "P384"
		}
	case *rsa.PublicKey:
		return fmt.Sprint(k.N.BitLen())
	}
	return ""
}

// ariFromResponse turns the CA's answer into state, drawing the renewal
// time uniformly in the window and clamping Retry-After to [1m, 24h] as
// RFC 9773 asks clients to do with unreasonable values.
func ariFromResponse(now time.Time, certID string, r *certificate.RenewalInfoResponse) *ARIState {
	retry := r.RetryAfter
	if retry <= 0 {
		retry = 6 * time.Hour
	}
	retry = min(max(retry, time.Minute), 24*time.Hour)
	a := &ARIState{
		CertID:         certID,
		WindowStart:    r.SuggestedWindow.Start.UTC(),
		WindowEnd:      r.SuggestedWindow.End.UTC(),
		NextCheck:      now.Add(retry).UTC(),
		ExplanationURL: r.ExplanationURL,
	}
	if a.WindowEnd.Before(a.WindowStart) || a.WindowStart.IsZero() {
		// A malformed window is ignored: the lifetime rule applies.
		a.WindowStart, a.WindowEnd = time.Time{}, time.Time{}
		return a
	}
	a.RenewAt = a.WindowStart
	if w := a.WindowEnd.Sub(a.WindowStart); w > 0 {
		a.RenewAt = a.WindowStart.Add(time.Duration(rand.Int64N(int64(w))))
	}
	return a
}
