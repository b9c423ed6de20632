package ca

import (
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/rampart-sec/rampart/pkg/config"
)

// ACMEChallenges are the challenge types the ACME provisioner can offer.
var ACMEChallenges = []string{"http-01", "tls-alpn-01", "dns-01"}

// ACMEConfig is pki.yaml's acme section: step-ca's ACME provisioner, so
// certbot, Caddy, Traefik, cert-manager and acme-renew get internal
// certificates with no token. Off by default.
type ACMEConfig struct {
	Enabled bool `yaml:"enabled"`
	// Name is the provisioner's name, part of the directory URL:
	// <url>/acme/<name>/directory (default "acme").
	Name string `yaml:"name"`
	// Challenges offered (default all three: http-01, tls-alpn-01,
	// dns-01). The CA validates them itself: it must reach port 80 (or
	// 443) of the names, or resolve their _acme-challenge TXT records.
	Challenges []string `yaml:"challenges"`
	// Lifetime of ACME certificates (default leaf.default, 24h); clients
	// may ask for less, never more.
	Lifetime config.Duration `yaml:"lifetime"`
	// RequireEAB: only clients holding an external account binding key
	// (pki acme-eab NAME on the CA host) may open an account.
	RequireEAB bool `yaml:"require_eab"`
}

func (a *ACMEConfig) setDefaults(leaf time.Duration) error {
	if a.Name == "" {
		a.Name = "acme"
	}
	if url.PathEscape(a.Name) != a.Name {
		return fmt.Errorf("acme: name %q: use letters, digits, '-' and '.' (it is part of the directory URL)", a.Name)
	}
	if len(a.Challenges) == 0 {
		a.Challenges = slices.Clone(ACMEChallenges)
	}
	for _, ch := range a.Challenges {
		if !slices.Contains(ACMEChallenges, ch) {
			return fmt.Errorf("acme: challenge %q: want some of %v", ch, ACMEChallenges)
		}
	}
	if a.Lifetime == 0 {
		a.Lifetime = config.Duration(leaf)
	}
	if time.Duration(a.Lifetime) < MinLeafLifetime {
		return fmt.Errorf("acme: lifetime %s is below the 5m floor", a.Lifetime)
	}
	return nil
}

// ACMEDirectoryURL is what ACME clients are given (certbot --server,
// Caddy's acme_ca, acme-renew's directory).
func (c *Config) ACMEDirectoryURL() string { return c.URL + "/acme/" + c.ACME.Name + "/directory" }
