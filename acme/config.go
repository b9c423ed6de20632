package acme

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/lego"
	"gopkg.in/yaml.v3"

	"github.com/rampart-sec/rampart/pkg/config"
)

// Directory URLs accepted by name in the "directory" setting.
const (
	LetsEncryptProduction = lego.LEDirectoryProduction
	LetsEncryptStaging    = lego.LEDirectoryStaging
)

// Config is acme-renew's YAML configuration: accounts (one per CA) and the
// certificates to keep renewed. See examples/acme/acme.yaml for every
// setting with its default.
type Config struct {
	// StateDir holds accounts, the state file, the lock and, unless a
	// certificate says otherwise, the certificates themselves.
	StateDir string `yaml:"state_dir"`
	// Concurrency bounds how many certificates are obtained at once.
	Concurrency int `yaml:"concurrency"`
	// MetricsTextfile, when set, is rewritten after every run for the
	// node_exporter textfile collector.
	MetricsTextfile string `yaml:"metrics_textfile"`
	// HookTimeout bounds each deploy hook (default 2m).
	HookTimeout config.Duration `yaml:"hook_timeout"`
	// Accounts by name. A certificate names its account; with a single
	// account it may leave the name out.
	Accounts     map[string]*Account `yaml:"accounts"`
	Certificates []*Certificate      `yaml:"certificates"`

	file string // where it was loaded from, for errors found after loading
}

// Account is one ACME account at one CA.
type Account struct {
	// Directory is "production" (default, Let's Encrypt), "staging" (Let's
	// Encrypt staging) or the https URL of any ACME directory.
	Directory string `yaml:"directory"`
	Email     string `yaml:"email"`
	// CABundle is a PEM file of extra roots to trust for the CA's API
	// (a private CA, or Pebble in tests); empty means the system roots.
	CABundle string `yaml:"ca_bundle"`
	// EAB is External Account Binding, required by some CAs.
	EAB *EAB `yaml:"eab"`
	// KeyType of the account key (default ec256).
	KeyType string `yaml:"key_type"`

	name string
}

// EAB holds External Account Binding credentials; the HMAC key comes from
// the config, a file, or an environment variable.
type EAB struct {
	KID         string `yaml:"kid"`
	HMACKey     string `yaml:"hmac_key"`
	HMACKeyFile string `yaml:"hmac_key_file"`
	HMACKeyEnv  string `yaml:"hmac_key_env"`
}

// Certificate is one certificate to keep renewed.
type Certificate struct {
	// Name identifies the certificate in state, metrics, logs and the
	// default output directory; default: the first domain.
	Name    string   `yaml:"name"`
	Domains []string `yaml:"domains"`
	Account string   `yaml:"account"`
	// KeyType is ec256 (default), ec384, rsa2048, rsa3072, rsa4096 or rsa8192.
	KeyType string `yaml:"key_type"`
	// Profile is the ACME profile to request ("shortlived", "tlsserver"),
	// empty for the CA's default.
	Profile   string    `yaml:"profile"`
	Challenge Challenge `yaml:"challenge"`
	Output    Output    `yaml:"output"`
	// DeployHooks run, in order, after a new certificate is in place.
	DeployHooks []string `yaml:"deploy_hooks"`
	// RenewBefore overrides the lifetime rule when the CA gives no ARI
	// window: renew when less than this remains.
	RenewBefore config.Duration `yaml:"renew_before"`

	directory string // the account's directory URL
	hash      string // of every setting that shapes an order, see configHash
	line      int    // of the entry in the config file (0: unknown)
	dnsLine   int    // of challenge.dns01.provider
}

// Challenge selects exactly one way to prove control of the names.
type Challenge struct {
	HTTP01    *HTTP01    `yaml:"http01"`
	Webroot   *Webroot   `yaml:"webroot"`
	TLSALPN01 *TLSALPN01 `yaml:"tlsalpn01"`
	DNS01     *DNS01     `yaml:"dns01"`
}

// HTTP01 answers HTTP-01 from a built-in server; behind a reverse proxy
// set Port to where the proxy forwards /.well-known/acme-challenge/.
type HTTP01 struct {
	Address string `yaml:"address"` // listen address, default all
	Port    int    `yaml:"port"`    // default 80
}

// Webroot answers HTTP-01 by writing files a web server already serves.
type Webroot struct {
	Path string `yaml:"path"`
}

// TLSALPN01 answers TLS-ALPN-01 from a built-in server.
type TLSALPN01 struct {
	Address string `yaml:"address"`
	Port    int    `yaml:"port"` // default 443
}

// DNS01 answers DNS-01 through one of lego's DNS providers, by name.
type DNS01 struct {
	// Provider is lego's provider name: "ovh", "gandiv5", "route53",
	// "cloudflare", ... (https://go-acme.github.io/lego/dns/).
	Provider string `yaml:"provider"`
	// Env sets the provider's variables (OVH_ENDPOINT: ovh-eu).
	Env map[string]string `yaml:"env"`
	// EnvFiles reads variables from files, for secrets (OVH_APPLICATION_SECRET:
	// /etc/rampart/acme/ovh-secret); lego reads NAME_FILE itself.
	EnvFiles map[string]string `yaml:"env_files"`
	// Resolvers are the recursive resolvers ("host:port") used to check
	// propagation; default /etc/resolv.conf.
	Resolvers []string `yaml:"resolvers"`
	// SkipAuthoritativeCheck checks propagation at the resolvers only,
	// not at the zone's authoritative servers.
	SkipAuthoritativeCheck bool `yaml:"skip_authoritative_check"`
}

// Output says where the certificate goes. Every version is written into
// its own directory under Dir and published by swapping one symlink,
// Dir/current, so readers see the old set of files or the new set, never a
// mix. Key, Cert, Chain, FullChain and Combined are optional extra paths,
// created once as symlinks through Dir/current.
type Output struct {
	Dir       string `yaml:"dir"`
	Owner     string `yaml:"owner"`
	Group     string `yaml:"group"`
	Mode      string `yaml:"mode"`      // of the private key and combined file, default 0600
	CertMode  string `yaml:"cert_mode"` // of the public files, default 0644
	Key       string `yaml:"key"`
	Cert      string `yaml:"cert"`
	Chain     string `yaml:"chain"`
	FullChain string `yaml:"fullchain"`
	Combined  string `yaml:"combined"`

	keyMode, certMode fs.FileMode
}

// LoadConfig reads and validates the config file at path. Errors name the
// file and, for YAML errors, the line.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig for content in memory; name appears in errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	var c Config
	if err := config.Decode(name, data, &c); err != nil {
		return nil, err
	}
	c.file = name
	c.locate(data)
	return &c, nil
}

// locate records the line of every certificate entry and of its dns01
// provider, for errors found after decoding (a DNS provider that cannot
// be built).
func (c *Config) locate(data []byte) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return
	}
	certs := mapValue(doc.Content[0], "certificates")
	if certs == nil || certs.Kind != yaml.SequenceNode {
		return
	}
	for i, n := range certs.Content {
		if i >= len(c.Certificates) {
			return
		}
		c.Certificates[i].line = n.Line
		if p := mapValue(mapValue(mapValue(n, "challenge"), "dns01"), "provider"); p != nil {
			c.Certificates[i].dnsLine = p.Line
		}
	}
}

// mapValue is the value node of key in mapping n; nil if absent.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// where is "file:line" of certificate c, or the file alone.
func (c *Config) where(line int) string {
	if line > 0 {
		return fmt.Sprintf("%s:%d", c.file, line)
	}
	return c.file
}

// configHash identifies the settings that decide what is ordered and how:
// names, key type, profile, challenge, account and CA. Output paths,
// hooks and renew_before do not make a failed order succeed, so changing
// them does not end a backoff.
func configHash(cert *Certificate, a *Account) string {
	h := sha256.New()
	json.NewEncoder(h).Encode([]any{cert.Domains, cert.KeyType, cert.Profile, cert.Challenge, cert.Account, a.Directory, a.EAB, a.CABundle})
	return hex.EncodeToString(h.Sum(nil)[:12])
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// Validate fills defaults and checks the config; config.Load calls it.
func (c *Config) Validate() error {
	if c.StateDir == "" {
		c.StateDir = "/var/lib/rampart/acme"
	}
	if !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("state_dir %q: must be an absolute path", c.StateDir)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		return fmt.Errorf("concurrency %d: must be between 1 and 64", c.Concurrency)
	}
	if c.HookTimeout < 0 {
		return fmt.Errorf("hook_timeout %s: must not be negative", c.HookTimeout)
	}
	if len(c.Accounts) == 0 {
		return errors.New("accounts: at least one account is required")
	}
	for name, a := range c.Accounts {
		if a == nil {
			a = &Account{}
			c.Accounts[name] = a
		}
		a.name = name
		if err := a.validate(); err != nil {
			return fmt.Errorf("account %q: %w", name, err)
		}
	}
	if len(c.Certificates) == 0 {
		return errors.New("certificates: at least one certificate is required")
	}
	seen := map[string]bool{}
	for i, cert := range c.Certificates {
		if cert == nil {
			return fmt.Errorf("certificates[%d]: empty entry", i)
		}
		if err := cert.validate(c); err != nil {
			label := cert.Name
			if label == "" {
				label = strconv.Itoa(i)
			}
			return fmt.Errorf("certificate %q: %w", label, err)
		}
		if seen[cert.Name] {
			return fmt.Errorf("certificate %q: name used twice", cert.Name)
		}
		seen[cert.Name] = true
		a := c.Accounts[cert.Account]
		cert.directory, cert.hash = a.Directory, configHash(cert, a)
	}
	// lego keeps one list of resolvers per process.
	var resolvers []string
	for _, cert := range c.Certificates {
		if d := cert.Challenge.DNS01; d != nil && len(d.Resolvers) > 0 {
			if resolvers != nil && !slices.Equal(resolvers, d.Resolvers) {
				return fmt.Errorf("certificate %q: dns01 resolvers: every certificate must use the same resolvers", cert.Name)
			}
			resolvers = d.Resolvers
		}
	}
	return nil
}

func (a *Account) validate() error {
	if !nameRE.MatchString(a.name) {
		return errors.New("account names use letters, digits, '.', '_' and '-'")
	}
	switch a.Directory {
	case "", "production":
		a.Directory = LetsEncryptProduction
	case "staging":
		a.Directory = LetsEncryptStaging
	}
	u, err := url.Parse(a.Directory)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("directory %q: want production, staging or an https:// URL", a.Directory)
	}
	if a.KeyType == "" {
		a.KeyType = "ec256"
	}
	if _, err := parseKeyType(a.KeyType); err != nil {
		return err
	}
	if a.EAB != nil {
		n := 0
		for _, s := range []string{a.EAB.HMACKey, a.EAB.HMACKeyFile, a.EAB.HMACKeyEnv} {
			if s != "" {
				n++
			}
		}
		if a.EAB.KID == "" || n != 1 {
			return errors.New("eab: needs kid and exactly one of hmac_key, hmac_key_file, hmac_key_env")
		}
	}
	return nil
}

func (cert *Certificate) validate(c *Config) error {
	if len(cert.Domains) == 0 {
		return errors.New("domains: at least one name is required")
	}
	for i, d := range cert.Domains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if !validDomain(d) {
			return fmt.Errorf("domains: %q is not a DNS name", cert.Domains[i])
		}
		cert.Domains[i] = d
	}
	if slices.Contains(cert.Domains[1:], cert.Domains[0]) || len(dedup(cert.Domains)) != len(cert.Domains) {
		return errors.New("domains: a name is listed twice")
	}
	if cert.Name == "" {
		cert.Name = strings.Replace(cert.Domains[0], "*", "wildcard", 1)
	}
	if !nameRE.MatchString(cert.Name) {
		return errors.New("name: use letters, digits, '.', '_' and '-'")
	}
	if cert.Account == "" {
		if len(c.Accounts) != 1 {
			return errors.New("account: several accounts are configured; name one")
		}
		for name := range c.Accounts {
			cert.Account = name
		}
	}
	if c.Accounts[cert.Account] == nil {
		return fmt.Errorf("account %q: no such account", cert.Account)
	}
	if cert.KeyType == "" {
		cert.KeyType = "ec256"
	}
	if _, err := parseKeyType(cert.KeyType); err != nil {
		return err
	}
	if cert.RenewBefore < 0 {
		return errors.New("renew_before: must not be negative")
	}
	if err := cert.Challenge.validate(cert.Domains); err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	return cert.Output.validate(c.StateDir, cert.Name)
}

func (ch *Challenge) validate(domains []string) error {
	n := 0
	if ch.HTTP01 != nil {
		n++
		if ch.HTTP01.Port == 0 {
			ch.HTTP01.Port = 80
		}
		if err := checkListen(ch.HTTP01.Address, ch.HTTP01.Port); err != nil {
			return fmt.Errorf("http01: %w", err)
		}
	}
	if ch.Webroot != nil {
		n++
		if !filepath.IsAbs(ch.Webroot.Path) {
			return fmt.Errorf("webroot: path %q: must be an absolute path", ch.Webroot.Path)
		}
	}
	if ch.TLSALPN01 != nil {
		n++
		if ch.TLSALPN01.Port == 0 {
			ch.TLSALPN01.Port = 443
		}
		if err := checkListen(ch.TLSALPN01.Address, ch.TLSALPN01.Port); err != nil {
			return fmt.Errorf("tlsalpn01: %w", err)
		}
	}
	if ch.DNS01 != nil {
		n++
		if ch.DNS01.Provider == "" {
			return errors.New("dns01: provider is required (a lego DNS provider name such as ovh)")
		}
		for k := range ch.DNS01.Env {
			if !envNameRE.MatchString(k) {
				return fmt.Errorf("dns01: env %q: not a variable name", k)
			}
		}
		for k, v := range ch.DNS01.EnvFiles {
			if !envNameRE.MatchString(k) {
				return fmt.Errorf("dns01: env_files %q: not a variable name", k)
			}
			if !filepath.IsAbs(v) {
				return fmt.Errorf("dns01: env_files %s: %q must be an absolute path", k, v)
			}
		}
		for _, r := range ch.DNS01.Resolvers {
			if r == "" {
				return errors.New("dns01: resolvers: empty entry")
			}
		}
	}
	if n != 1 {
		return errors.New("choose exactly one of http01, webroot, tlsalpn01, dns01")
	}
	if ch.DNS01 == nil {
		for _, d := range domains {
			if strings.HasPrefix(d, "*.") {
				return fmt.Errorf("%q: wildcard names need dns01", d)
			}
		}
	}
	return nil
}

var envNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

func checkListen(addr string, port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d: out of range", port)
	}
	if addr != "" && net.ParseIP(addr) == nil {
		return fmt.Errorf("address %q: not an IP address", addr)
	}
	return nil
}

func (o *Output) validate(stateDir, name string) error {
	if o.Dir == "" {
		o.Dir = filepath.Join(stateDir, "certs", name)
	}
	for _, p := range []struct{ key, val string }{
		{"dir", o.Dir}, {"key", o.Key}, {"cert", o.Cert}, {"chain", o.Chain},
		{"fullchain", o.FullChain}, {"combined", o.Combined},
	} {
		if p.val != "" && !filepath.IsAbs(p.val) {
			return fmt.Errorf("output: %s %q: must be an absolute path", p.key, p.val)
		}
	}
	var err error
	if o.keyMode, err = parseMode(o.Mode, 0o600); err != nil {
		return fmt.Errorf("output: mode: %w", err)
	}
	if o.certMode, err = parseMode(o.CertMode, 0o644); err != nil {
		return fmt.Errorf("output: cert_mode: %w", err)
	}
	if o.keyMode&0o007 != 0 {
		return fmt.Errorf("output: mode %s: the private key must not be readable by others", o.Mode)
	}
	return nil
}

func parseMode(s string, def fs.FileMode) (fs.FileMode, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q: want an octal mode such as 0640", s)
	}
	return fs.FileMode(v), nil
}

func parseKeyType(s string) (certcrypto.KeyType, error) {
	switch strings.ToLower(s) {
	case "ec256", "p256", "ecdsa":
		return certcrypto.EC256, nil
	case "ec384", "p384":
		return certcrypto.EC384, nil
	case "rsa2048":
		return certcrypto.RSA2048, nil
	case "rsa3072":
		return certcrypto.RSA3072, nil
	case "rsa4096":
		return certcrypto.RSA4096, nil
	case "rsa8192":
		return certcrypto.RSA8192, nil
	}
	return "", fmt.Errorf("key_type %q: want ec256, ec384, rsa2048, rsa3072, rsa4096 or rsa8192", s)
}

func validDomain(d string) bool {
	d = strings.TrimPrefix(d, "*.")
	if len(d) == 0 || len(d) > 253 || !strings.Contains(d, ".") && d != "localhost" {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func dedup(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// hookTimeout is the configured timeout, 0 meaning hook's default.
func (c *Config) hookTimeout() time.Duration { return time.Duration(c.HookTimeout) }
