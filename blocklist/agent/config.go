package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-sec/rampart/blocklist/detect"
	"github.com/rampart-sec/rampart/firewall/apply"
	"github.com/rampart-sec/rampart/firewall/pf"
	"github.com/rampart-sec/rampart/pkg/config"
	pkiclient "github.com/rampart-sec/rampart/pki/client"
)

// Config is blocklist-agent's YAML configuration; examples/blocklist/agent.yaml
// documents every key and default.
type Config struct {
	Server    ServerConfig    `yaml:"server"`
	Firewall  FirewallConfig  `yaml:"firewall"`
	StateDir  string          `yaml:"state_dir"`
	Metrics   MetricsConfig   `yaml:"metrics"`
	Detectors []detect.Config `yaml:"detectors"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
}

// ServerConfig says where blocklistd is and how the agent proves who it is.
type ServerConfig struct {
	URL string `yaml:"url"`
	// CertDir is a directory as `pki bootstrap` writes it (cert.pem,
	// key.pem, root.pem); CA, Cert and Key override single files.
	CertDir string `yaml:"cert_dir"`
	CA      string `yaml:"ca"`
	Cert    string `yaml:"cert"`
	Key     string `yaml:"key"`
	// Wait is the long-poll duration; blocklistd caps it.
	Wait       config.Duration `yaml:"wait"`
	BackoffMin config.Duration `yaml:"backoff_min"`
	BackoffMax config.Duration `yaml:"backoff_max"`
	// CRL refuses a blocklistd whose certificate the CA revoked (pki
	// serve's /1.0/crl); off when url is empty.
	CRL pkiclient.RevocationConfig `yaml:"crl"`
}

// FirewallConfig selects the backend and the safety policy.
type FirewallConfig struct {
	Backend string `yaml:"backend"`
	Table   string `yaml:"table"`
	// nftables
	NetNS   string `yaml:"netns"`
	Reject  bool   `yaml:"reject"`
	Forward bool   `yaml:"forward"`
	// pf
	Pfctl      string `yaml:"pfctl"`
	KillStates bool   `yaml:"kill_states"`
	// Allow are addresses and prefixes never blocked, on top of
	// loopback, link-local, this host's addresses and blocklistd's.
	Allow      []string `yaml:"allow"`
	AllowBroad bool     `yaml:"allow_broad"`
	// HostAddrsInterval is how often this host's own addresses are read
	// again; when they changed, the whole set is rebuilt (default 30s).
	HostAddrsInterval config.Duration `yaml:"host_addrs_interval"`
}

// MetricsConfig is the Prometheus endpoint.
type MetricsConfig struct {
	Listen string `yaml:"listen"`
}

// Defaults for keys left out.
const (
	DefaultStateDir = "/var/lib/rampart/blocklist-agent"
	DefaultWait     = 60 * time.Second
	// DefaultTable is the nftables or pf table name of both backends.
	DefaultTable = "rampart"
)

// File names inside a certificate directory written by `pki bootstrap`.
const (
	certDirCert = "cert.pem"
	certDirKey  = "key.pem"
	certDirRoot = "root.pem"
)

// LoadConfig reads and checks a configuration file, filling defaults.
func LoadConfig(path string) (Config, error) {
	var c Config
	if err := config.Load(path, &c); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate fills defaults and checks c; config.Load calls it.
func (c *Config) Validate() error {
	u, err := url.Parse(c.Server.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("server.url %q: want https://HOST:PORT of blocklistd (mTLS only)", c.Server.URL)
	}
	if c.Server.CertDir != "" {
		if c.Server.CA == "" {
			c.Server.CA = filepath.Join(c.Server.CertDir, certDirRoot)
		}
		if c.Server.Cert == "" {
			c.Server.Cert = filepath.Join(c.Server.CertDir, certDirCert)
		}
		if c.Server.Key == "" {
			c.Server.Key = filepath.Join(c.Server.CertDir, certDirKey)
		}
	}
	if c.Server.CA == "" || c.Server.Cert == "" || c.Server.Key == "" {
		return errors.New("server: give cert_dir (as written by `pki bootstrap`) or all of ca, cert and key")
	}
	if err := c.Server.CRL.Validate(); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if c.Server.Wait == 0 {
		c.Server.Wait = config.Duration(DefaultWait)
	}
	if c.Server.Wait < config.Duration(time.Second) {
		return fmt.Errorf("server.wait %v: want at least 1s", c.Server.Wait)
	}
	if c.Server.BackoffMin == 0 {
		c.Server.BackoffMin = config.Duration(time.Second)
	}
	if c.Server.BackoffMax == 0 {
		c.Server.BackoffMax = config.Duration(time.Minute)
	}
	if c.Server.BackoffMin < 0 || c.Server.BackoffMax < c.Server.BackoffMin {
		return fmt.Errorf("server.backoff_min %v / backoff_max %v: want 0 < min <= max", c.Server.BackoffMin, c.Server.BackoffMax)
	}
	if c.Firewall.Backend == "" {
		c.Firewall.Backend = apply.DefaultBackend
	}
	if !slices.Contains(apply.Backends(), c.Firewall.Backend) {
		return fmt.Errorf("firewall.backend %q: this build offers %s", c.Firewall.Backend, strings.Join(apply.Backends(), ", "))
	}
	if c.Firewall.Table == "" {
		c.Firewall.Table = DefaultTable
	}
	if c.Firewall.HostAddrsInterval == 0 {
		c.Firewall.HostAddrsInterval = config.Duration(DefaultHostAddrsInterval)
	}
	if c.Firewall.HostAddrsInterval < config.Duration(100*time.Millisecond) {
		return fmt.Errorf("firewall.host_addrs_interval %v: want at least 100ms", c.Firewall.HostAddrsInterval)
	}
	if err := c.Firewall.check(); err != nil {
		return err
	}
	if _, err := c.AllowPrefixes(); err != nil {
		return err
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	for i, d := range c.Detectors {
		if _, err := d.Build(nil, nil); err != nil {
			return fmt.Errorf("detectors[%d]: %w", i, err)
		}
	}
	return nil
}

// check refuses options of the other backend and a table name pf would
// refuse, so that `run --check` (the OpenBSD rc.d pre-start) fails on
// what `run` would.
func (f *FirewallConfig) check() error {
	switch f.Backend {
	case "pf":
		if f.NetNS != "" || f.Reject || f.Forward {
			return fmt.Errorf("firewall: netns, reject and forward apply to nftables only; with pf, pf.conf decides how <%s> is blocked", f.Table)
		}
		if _, err := pf.New(pf.Options{Table: f.Table}); err != nil {
			return fmt.Errorf("firewall.table: %w", err)
		}
	case "nftables":
		if f.Pfctl != "" || f.KillStates {
			return errors.New("firewall: pfctl and kill_states apply to pf only")
		}
	}
	return nil
}

// AllowPrefixes parses firewall.allow.
func (c *Config) AllowPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.Firewall.Allow {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("firewall.allow %q: want an address or prefix: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// TLSConfig builds the client side of mTLS from the configured files. The
// certificate and key are read again whenever they change on disk, so a
// `pki renew` takes effect without restarting the agent.
func (c *ServerConfig) TLSConfig() (*tls.Config, error) {
	caPEM, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, fmt.Errorf("server.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("server.ca %s: no PEM certificate in it", c.CA)
	}
	kp := &keyPair{cert: c.Cert, key: c.Key}
	if _, err := kp.get(); err != nil {
		return nil, err
	}
	return &tls.Config{
		RootCAs:    pool,
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.get()
		},
	}, nil
}

// keyPair caches a certificate and key, reloading them when either file's
// modification time changes.
type keyPair struct {
	cert, key string

	mu     sync.Mutex
	stamp  [2]time.Time
	loaded *tls.Certificate
}

func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var stamp [2]time.Time
	for i, p := range []string{k.cert, k.key} {
		fi, err := os.Stat(p)
		if err != nil {
			if k.loaded != nil {
				return k.loaded, nil // mid-rename during a renewal: keep the old pair
			}
			return nil, fmt.Errorf("server certificate: %w", err)
		}
		stamp[i] = fi.ModTime()
	}
	if k.loaded != nil && stamp == k.stamp {
		return k.loaded, nil
	}
	pair, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		if k.loaded != nil {
			return k.loaded, nil // half-written renewal: the next handshake retries
		}
		return nil, fmt.Errorf("server.cert %s / server.key %s: %w", k.cert, k.key, err)
	}
	k.loaded, k.stamp = &pair, stamp
	return k.loaded, nil
}
