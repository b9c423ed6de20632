package ca

import (
	"fmt"
	"time"

	"github.com/rampart-sec/rampart/pkg/config"
	"github.com/rampart-sec/rampart/pki/client"
)

// CRLPath is where the CA publishes its CRL (DER; "?pem" for PEM), under
// its URL: https://ca.internal:9443/1.0/crl. No authentication: a CRL is
// signed, and whoever verifies certificates must be able to fetch it.
const CRLPath = client.CRLPath

// CRLConfig is pki.yaml's crl section: step-ca's CRL support, regenerated
// on every revocation and every RenewPeriod.
type CRLConfig struct {
	// Enabled publishes a CRL (default true).
	Enabled *bool `yaml:"enabled"`
	// RenewPeriod is how often the CRL is signed again even when nothing
	// was revoked (default 5m), so its thisUpdate says the CA is alive:
	// checkers refuse a CRL older than their max_age.
	RenewPeriod config.Duration `yaml:"renew_period"`
	// Validity is the CRL's nextUpdate after its thisUpdate (default 24h).
	Validity config.Duration `yaml:"validity"`
}

// On reports whether the CA publishes a CRL.
func (c *CRLConfig) On() bool { return c.Enabled == nil || *c.Enabled }

func (c *CRLConfig) setDefaults() error {
	if c.Enabled == nil {
		on := true
		c.Enabled = &on
	}
	if c.RenewPeriod == 0 {
		c.RenewPeriod = config.Duration(5 * time.Minute)
	}
	if c.Validity == 0 {
		c.Validity = config.Duration(24 * time.Hour)
	}
	if c.RenewPeriod < config.Duration(10*time.Second) {
		return fmt.Errorf("crl: renew_period %s: below 10s", c.RenewPeriod)
	}
	if c.Validity < c.RenewPeriod {
		return fmt.Errorf("crl: validity %s is shorter than renew_period %s", c.Validity, c.RenewPeriod)
	}
	return nil
}

// CRLURL is the address of the CA's CRL.
func (c *Config) CRLURL() string { return c.URL + CRLPath }
