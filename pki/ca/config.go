package ca

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rampart-sec/rampart/pkg/config"
	"github.com/rampart-sec/rampart/pki/client"
)

// MinLeafLifetime is the shortest X.509 lifetime the CA will be configured
// to issue.
const MinLeafLifetime = 5 * time.Minute

// Config is pki.yaml. Relative paths are relative to the file's directory.
type Config struct {
	// Listen is the address of the HTTPS API (default 127.0.0.1:9443).
	Listen string `yaml:"listen"`
	// URL is how hosts reach the CA (default https://<first dns name>:<port>).
	URL string `yaml:"url"`
	// DNSNames are the names (and IPs) in the CA's own TLS certificate and
	// the audiences tokens are accepted for.
	DNSNames []string `yaml:"dns_names"`

	PasswordFile     string `yaml:"password_file"`
	RootCert         string `yaml:"root_cert"`
	IntermediateCert string `yaml:"intermediate_cert"`
	IntermediateKey  string `yaml:"intermediate_key"`

	Provisioner struct {
		Name      string `yaml:"name"`
		PublicKey string `yaml:"public_key"` // JWK
		Key       string `yaml:"key"`        // JWE-encrypted private JWK
		// PublishEncryptedKey serves the encrypted key at
		// /provisioners/{kid}/encrypted-key, as step-ca does, so that
		// `step ca certificate` and `step ssh certificate` work with
		// --provisioner-password-file and no pre-minted token. Off by
		// default: anyone who can reach the CA may then try to guess the
		// password offline (pki init's is 256 random bits; a chosen one
		// may be weaker).
		PublishEncryptedKey bool `yaml:"publish_encrypted_key"`
	} `yaml:"provisioner"`

	// SSHUserProvisioner is a second JWK provisioner whose tokens obtain
	// SSH user certificates and nothing else (its templates refuse X.509
	// and SSH host certificates). Give its key to the bastion instead of
	// the main provisioner's. Empty name: not configured.
	SSHUserProvisioner struct {
		Name      string `yaml:"name"`
		PublicKey string `yaml:"public_key"`
		Key       string `yaml:"key"`
	} `yaml:"ssh_user_provisioner"`

	Store struct {
		Type     string `yaml:"type"` // bbolt (default) or postgresql
		Path     string `yaml:"path"` // bbolt file
		DSN      string `yaml:"dsn"`  // postgresql: postgres://user@host/db
		Database string `yaml:"database"`
	} `yaml:"store"`

	Leaf struct {
		Default config.Duration `yaml:"default"` // 24h
		Min     config.Duration `yaml:"min"`     // 5m, and never less
		Max     config.Duration `yaml:"max"`     // 30d
		// AllowRenewalAfterExpiry lets a host whose certificate expired
		// (it slept, the CA was down) renew with a token signed by the old
		// key. Revoked certificates are still refused.
		AllowRenewalAfterExpiry bool `yaml:"allow_renewal_after_expiry"`
		// RenewalAfterExpiryMax bounds how long after its NotAfter such a
		// certificate still renews (default 30d; step-ca itself has no
		// limit). There is no "unlimited": 0 or a negative value is an
		// error, and a longer window must be written out.
		RenewalAfterExpiryMax RenewalWindow `yaml:"renewal_after_expiry_max"`
	} `yaml:"leaf"`

	SSH struct {
		Enabled     bool            `yaml:"enabled"`
		HostKey     string          `yaml:"host_key"`
		UserKey     string          `yaml:"user_key"`
		UserDefault config.Duration `yaml:"user_default"` // 16h
		UserMax     config.Duration `yaml:"user_max"`     // 24h
		HostDefault config.Duration `yaml:"host_default"` // 30d
		HostMax     config.Duration `yaml:"host_max"`     // 1y
	} `yaml:"ssh"`

	// Policy limits the names the CA signs. Empty lists allow everything.
	Policy struct {
		// DNS entries use step's policy syntax: "*.rampart.internal" matches
		// one label under rampart.internal (web1.rampart.internal, not
		// a.web1.rampart.internal), "localhost" only itself.
		DNS []string `yaml:"dns"`
		IP  []string `yaml:"ip"` // CIDRs or single addresses
	} `yaml:"policy"`

	// CRL publishes revocations at URL + /1.0/crl (see [CRLConfig]).
	CRL CRLConfig `yaml:"crl"`

	// ACME serves step-ca's ACME provisioner (see [ACMEConfig]); off by
	// default.
	ACME ACMEConfig `yaml:"acme"`

	// SSHPOP lets hosts renew SSH host certificates (see [SSHPOPConfig]).
	SSHPOP SSHPOPConfig `yaml:"sshpop"`

	// Roles are the role names tokens may carry (urn:rampart:role:<role>).
	Roles []string `yaml:"roles"`

	// Metrics is the Prometheus listen address; empty disables.
	Metrics string `yaml:"metrics"`
	// AuditLog receives one JSON line per issued certificate; empty or "-"
	// writes to the daemon's log.
	AuditLog string `yaml:"audit_log"`

	dir string
}

// DefaultRenewalAfterExpiryMax is leaf.renewal_after_expiry_max when the
// key is absent: a host that slept through a long weekend or a holiday
// renews by itself; one gone for longer needs an operator's fresh token.
const DefaultRenewalAfterExpiryMax = 30 * 24 * time.Hour

// RenewalWindow is leaf.renewal_after_expiry_max: a [config.Duration]
// ("30d", "720h") that must be above zero. It is a type of its own so that
// 0 or a negative value is refused with the file, line and value instead
// of being mistaken for "absent" (the default) or "unlimited".
type RenewalWindow config.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (w *RenewalWindow) UnmarshalYAML(n *yaml.Node) error {
	notPositive := fmt.Errorf("line %d: leaf.renewal_after_expiry_max %q: must be positive (there is no unlimited; "+
		"to refuse every expired certificate set allow_renewal_after_expiry: false)", n.Line, n.Value)
	if strings.HasPrefix(strings.TrimSpace(n.Value), "-") {
		return notPositive // before config.Duration, which calls "-1d" merely invalid
	}
	var d config.Duration
	if err := d.UnmarshalYAML(n); err != nil {
		return err
	}
	if d <= 0 {
		return notPositive
	}
	*w = RenewalWindow(d)
	return nil
}

// MarshalYAML implements yaml.Marshaler; whole days are written "30d".
func (w RenewalWindow) MarshalYAML() (any, error) { return w.String(), nil }

// String returns whole days as "30d", anything else in Go's notation.
func (w RenewalWindow) String() string {
	d := time.Duration(w)
	if day := 24 * time.Hour; d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// RenewalAfterExpiryLimit is how long after its NotAfter a certificate may
// still be renewed: 0 when renewal after expiry is off (step-ca then
// refuses every expired certificate), otherwise
// leaf.renewal_after_expiry_max, with the default for a Config built in Go
// that left it unset (a file cannot: see [RenewalWindow]).
func (c *Config) RenewalAfterExpiryLimit() time.Duration {
	if !c.Leaf.AllowRenewalAfterExpiry {
		return 0
	}
	if d := time.Duration(c.Leaf.RenewalAfterExpiryMax); d > 0 {
		return d
	}
	return DefaultRenewalAfterExpiryMax
}

// LoadConfig reads pki.yaml strictly.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := config.Load(path, &c); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	c.dir = abs
	if err := c.setDefaults(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Dir is the directory relative paths are resolved against.
func (c *Config) Dir() string { return c.dir }

// Path resolves p against the config directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// DefaultRoles are the roles blocklistd and the bastion authorize on.
var defaultRoles = []string{"agent", "reporter", "admin"}

func (c *Config) setDefaults() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9443"
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
	}
	if len(c.DNSNames) == 0 {
		c.DNSNames = []string{"localhost"}
		if host != "" && host != "localhost" {
			c.DNSNames = append(c.DNSNames, host)
		}
	}
	if c.URL == "" {
		c.URL = "https://" + net.JoinHostPort(c.DNSNames[0], port)
	}
	if !strings.HasPrefix(c.URL, "https://") {
		return fmt.Errorf("url %q: want https://", c.URL)
	}
	if c.Provisioner.Name == "" {
		c.Provisioner.Name = "rampart"
	}
	switch c.Store.Type {
	case "", "bbolt":
		c.Store.Type = "bbolt"
		if c.Store.Path == "" {
			c.Store.Path = "db.bolt"
		}
	case "postgresql", "postgres":
		c.Store.Type = "postgresql"
		if c.Store.DSN == "" {
			return fmt.Errorf("store: type postgresql needs dsn")
		}
		if c.Store.Database == "" {
			c.Store.Database = "rampart_pki"
		}
	default:
		return fmt.Errorf("store: type %q: want bbolt or postgresql", c.Store.Type)
	}
	def := func(d *config.Duration, v time.Duration) {
		if *d == 0 {
			*d = config.Duration(v)
		}
	}
	def(&c.Leaf.Default, 24*time.Hour)
	def(&c.Leaf.Min, MinLeafLifetime)
	def(&c.Leaf.Max, 30*24*time.Hour)
	if c.Leaf.RenewalAfterExpiryMax == 0 {
		c.Leaf.RenewalAfterExpiryMax = RenewalWindow(DefaultRenewalAfterExpiryMax)
	}
	def(&c.SSH.UserDefault, 16*time.Hour)
	def(&c.SSH.UserMax, 24*time.Hour)
	def(&c.SSH.HostDefault, 30*24*time.Hour)
	def(&c.SSH.HostMax, 365*24*time.Hour)
	if time.Duration(c.Leaf.Min) < MinLeafLifetime {
		return fmt.Errorf("leaf: min %s is below the 5m floor", c.Leaf.Min)
	}
	if c.Leaf.Default < c.Leaf.Min || c.Leaf.Default > c.Leaf.Max {
		return fmt.Errorf("leaf: default %s is outside min %s and max %s", c.Leaf.Default, c.Leaf.Min, c.Leaf.Max)
	}
	for _, p := range c.Policy.IP {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err2 := netip.ParseAddr(p); err2 != nil {
				return fmt.Errorf("policy: ip %q: %w", p, err)
			}
		}
	}
	if len(c.Roles) == 0 {
		c.Roles = slices.Clone(defaultRoles)
	}
	return c.setExtraDefaults()
}

// LoadProvisioner loads the token-minting key (it needs the password file).
// rootSHA is embedded in the tokens so hosts can check the pin.
func (c *Config) LoadProvisioner(rootSHA string) (*client.Provisioner, error) {
	return client.LoadProvisioner(c.Provisioner.Name, c.Path(c.Provisioner.Key), c.Path(c.PasswordFile), rootSHA)
}

// RootFingerprint reads the root certificate named in the config.
func (c *Config) RootFingerprint() (string, error) {
	b, err := os.ReadFile(c.Path(c.RootCert))
	if err != nil {
		return "", fmt.Errorf("root certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("root certificate %s: no CERTIFICATE block", c.Path(c.RootCert))
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("root certificate %s: %w", c.Path(c.RootCert), err)
	}
	return client.Fingerprint(cert), nil
}

// LoadSSHUserProvisioner loads the key of the SSH-user-only provisioner.
func (c *Config) LoadSSHUserProvisioner(rootSHA string) (*client.Provisioner, error) {
	if c.SSHUserProvisioner.Name == "" {
		return nil, fmt.Errorf("no ssh_user_provisioner in the configuration")
	}
	p := c.SSHUserProvisioner
	return client.LoadProvisioner(p.Name, c.Path(p.Key), c.Path(c.PasswordFile), rootSHA)
}
