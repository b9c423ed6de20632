package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rampart-sec/rampart/blocklist/feed"
	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
	"github.com/rampart-sec/rampart/blocklist/store/pgstore"
	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/pkg/config"
	"github.com/rampart-sec/rampart/pkg/listfile"
	pkiclient "github.com/rampart-sec/rampart/pki/client"
)

// FileConfig is blocklistd.yaml; examples/blocklist/blocklistd.yaml
// documents every key.
type FileConfig struct {
	Listen        string `yaml:"listen"`
	MetricsListen string `yaml:"metrics_listen"`
	TLS           struct {
		// CertDir is a directory as `pki bootstrap` writes it (cert.pem,
		// key.pem, root.pem), served through pki/client's Source; cert,
		// key and client_ca default to its files.
		CertDir  string `yaml:"cert_dir"`
		Cert     string `yaml:"cert"`
		Key      string `yaml:"key"`
		ClientCA string `yaml:"client_ca"`
		// CRL refuses client certificates the CA revoked (pki serve's
		// /1.0/crl); off when url is empty.
		CRL pkiclient.RevocationConfig `yaml:"crl"`
	} `yaml:"tls"`
	Store struct {
		Driver string `yaml:"driver"` // bolt (default) or postgres
		Path   string `yaml:"path"`
		DSN    string `yaml:"dsn"`
	} `yaml:"store"`
	Policy struct {
		Threshold   int             `yaml:"threshold"`
		Window      config.Duration `yaml:"window"`
		Ban         config.Duration `yaml:"ban"`
		MaxBan      config.Duration `yaml:"max_ban"`
		ForgetAfter config.Duration `yaml:"forget_after"`
		IPv6Prefix  int             `yaml:"ipv6_prefix"`
		MinPrefixV4 PrefixLen       `yaml:"min_prefix_v4"`
		MinPrefixV6 PrefixLen       `yaml:"min_prefix_v6"`
		ManualTTL   config.Duration `yaml:"manual_ttl"`
		// AgentsAllowBroad says every agent sets firewall.allow_broad, so
		// min_prefix_v4/v6 may be broader than the agents' default limit
		// (/8, /32); see checkAgentLimit.
		AgentsAllowBroad bool `yaml:"agents_allow_broad"`
	} `yaml:"policy"`
	Reporters struct {
		Rate  float64 `yaml:"rate"`
		Burst int     `yaml:"burst"`
	} `yaml:"reporters"`
	Sync struct {
		MaxWait config.Duration `yaml:"max_wait"`
	} `yaml:"sync"`
	Allow []string `yaml:"allow"`
	Feeds []struct {
		Name        string          `yaml:"name"`
		URL         string          `yaml:"url"`
		Interval    config.Duration `yaml:"interval"`
		MaxPrefixV4 int             `yaml:"max_prefix_v4"`
		MaxPrefixV6 int             `yaml:"max_prefix_v6"`
		MaxBytes    int64           `yaml:"max_bytes"`
		MaxShrink   *Share          `yaml:"max_shrink"`
		AllowEmpty  bool            `yaml:"allow_empty"`
	} `yaml:"feeds"`
	// CLI tells the ban/unban/allow/list verbs how to reach this daemon.
	CLI struct {
		URL     string `yaml:"url"`
		CertDir string `yaml:"cert_dir"`
		Cert    string `yaml:"cert"`
		Key     string `yaml:"key"`
		CA      string `yaml:"ca"`
	} `yaml:"cli"`
}

// Validate implements config.Validator.
func (c *FileConfig) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: required (host:port)"))
	}
	if d := c.TLS.CertDir; d != "" {
		def := func(v *string, name string) {
			if *v == "" {
				*v = filepath.Join(d, name)
			} else if filepath.Clean(*v) != filepath.Join(d, name) {
				errs = append(errs, fmt.Errorf("tls: cert_dir %s and %s name different files; give cert_dir, or cert, key and client_ca", d, *v))
			}
		}
		def(&c.TLS.Cert, pkiclient.CertFile)
		def(&c.TLS.Key, pkiclient.KeyFile)
		def(&c.TLS.ClientCA, pkiclient.RootFile)
	}
	if c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.ClientCA == "" {
		errs = append(errs, errors.New("tls: cert_dir (as written by `pki bootstrap`), or cert, key and client_ca, are required (blocklistd only speaks mTLS)"))
	}
	if err := c.TLS.CRL.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("tls: %w", err))
	}
	switch c.Store.Driver {
	case "", "bolt":
		if c.Store.Path == "" {
			errs = append(errs, errors.New("store.path: required for the bolt store"))
		}
	case "postgres":
		if c.Store.DSN == "" {
			errs = append(errs, errors.New("store.dsn: required for the postgres store"))
		}
	default:
		errs = append(errs, fmt.Errorf("store.driver %q: want bolt or postgres", c.Store.Driver))
	}
	if p := c.Policy.IPv6Prefix; p != 0 && (p < 32 || p > 128) {
		errs = append(errs, fmt.Errorf("policy.ipv6_prefix %d: want 32 to 128", p))
	}
	if p := c.Policy.MinPrefixV4.Bits; p < 0 || p > 32 {
		errs = append(errs, fmt.Errorf("policy.min_prefix_v4 %d: want 1 to 32", p))
	}
	if p := c.Policy.MinPrefixV6.Bits; p < 0 || p > 128 {
		errs = append(errs, fmt.Errorf("policy.min_prefix_v6 %d: want 1 to 128", p))
	}
	errs = append(errs, c.checkAgentLimit("min_prefix_v4", c.Policy.MinPrefixV4, firewall.DefaultMaxBits4),
		c.checkAgentLimit("min_prefix_v6", c.Policy.MinPrefixV6, firewall.DefaultMaxBits6))
	for i, a := range c.Allow {
		if _, err := ParsePrefix(a); err != nil {
			errs = append(errs, fmt.Errorf("allow[%d]: %w", i, err))
		}
	}
	names := map[string]bool{}
	for i, f := range c.Feeds {
		if f.Name == "" || strings.ContainsAny(f.Name, " |") || names[f.Name] {
			errs = append(errs, fmt.Errorf("feeds[%d].name %q: want a unique name without spaces", i, f.Name))
		}
		names[f.Name] = true
		switch {
		case strings.HasPrefix(f.URL, "https://"), strings.HasPrefix(f.URL, "http://"):
		case strings.HasPrefix(f.URL, "file:///"):
		default:
			errs = append(errs, fmt.Errorf("feeds[%d].url %q: want an http(s) URL or file:///absolute/path", i, f.URL))
		}
		if f.MaxShrink != nil && (*f.MaxShrink <= 0 || *f.MaxShrink > 1) {
			errs = append(errs, fmt.Errorf("feeds[%d].max_shrink %s: want more than 0%% and at most 100%%", i, f.MaxShrink))
		}
		if f.Interval != 0 && time.Duration(f.Interval) < time.Minute {
			errs = append(errs, fmt.Errorf("feeds[%d].interval %s: at least 1m, be kind to list publishers", i, f.Interval))
		}
	}
	return errors.Join(errs...)
}

// checkAgentLimit refuses a policy bound broader than what agents accept
// by default (agentBits, firewall.DefaultMaxBits4/6) unless
// policy.agents_allow_broad says every agent sets firewall.allow_broad.
// An agent refuses such an entry whole, and blocklistd publishes only the
// widest of nested decisions, so the narrower bans inside it would be
// lost on the agents without any error on blocklistd's side.
func (c *FileConfig) checkAgentLimit(key string, v PrefixLen, agentBits int) error {
	if v.Bits <= 0 || v.Bits >= agentBits || c.Policy.AgentsAllowBroad {
		return nil
	}
	where := ""
	if v.line > 0 {
		where = fmt.Sprintf("line %d: ", v.line)
	}
	return fmt.Errorf("%spolicy.%s %d: broader than agents accept (/%d) unless their firewall.allow_broad is set; "+
		"an agent refuses such a ban whole and with it every narrower ban inside it, which blocklistd does not publish separately: "+
		"use %d or more, or set policy.agents_allow_broad: true once every agent has firewall.allow_broad: true",
		where, key, v.Bits, agentBits, agentBits)
}

// PrefixLen is a prefix length in blocklistd.yaml (policy.min_prefix_v4,
// min_prefix_v6); it remembers its line for errors found after decoding.
type PrefixLen struct {
	Bits int
	line int
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *PrefixLen) UnmarshalYAML(n *yaml.Node) error {
	var bits int
	if err := n.Decode(&bits); err != nil {
		return err
	}
	p.Bits, p.line = bits, n.Line
	return nil
}

// LoadFile reads and checks blocklistd.yaml.
func LoadFile(path string) (*FileConfig, error) {
	var c FileConfig
	if err := config.Load(path, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// ServerConfig turns the file into a Config.
func (c *FileConfig) ServerConfig() Config {
	cfg := Config{
		Policy: Policy{
			Threshold: c.Policy.Threshold, Window: time.Duration(c.Policy.Window),
			BanTTL: time.Duration(c.Policy.Ban), MaxBanTTL: time.Duration(c.Policy.MaxBan),
			ForgetAfter: time.Duration(c.Policy.ForgetAfter), IPv6Prefix: c.Policy.IPv6Prefix,
			MinBits4: c.Policy.MinPrefixV4.Bits, MinBits6: c.Policy.MinPrefixV6.Bits, ManualTTL: time.Duration(c.Policy.ManualTTL),
		},
		ReportRate:  c.Reporters.Rate,
		ReportBurst: c.Reporters.Burst,
		MaxWait:     time.Duration(c.Sync.MaxWait),
	}
	for _, a := range c.Allow {
		p, _ := ParsePrefix(a) // checked by Validate
		cfg.Allow = append(cfg.Allow, p)
	}
	for _, f := range c.Feeds {
		lim := feed.Limits{AllowEmpty: f.AllowEmpty}
		if f.MaxShrink != nil {
			lim.MaxShrink = float64(*f.MaxShrink)
		}
		cfg.Feeds = append(cfg.Feeds, feed.Feed{Name: f.Name, URL: f.URL, Interval: time.Duration(f.Interval), MaxBytes: f.MaxBytes,
			Parse: listfile.Options{MaxBits4: f.MaxPrefixV4, MaxBits6: f.MaxPrefixV6}, Limits: lim})
	}
	return cfg
}

// ServerTLS builds the listener's mTLS configuration: from tls.cert_dir
// through pki/client's Source (renewals picked up, and whatever checks the
// Source applies to peers), or from the cert, key and client_ca files
// with [TLSConfig].
func (c *FileConfig) ServerTLS() (*tls.Config, error) {
	if c.TLS.CertDir != "" {
		src, err := pkiclient.NewSource(c.TLS.CertDir)
		if err != nil {
			return nil, err
		}
		tc := src.ServerConfig(true)
		tc.NextProtos = []string{"h2", "http/1.1"}
		return tc, nil
	}
	return TLSConfig(c.TLS.Cert, c.TLS.Key, c.TLS.ClientCA)
}

// OpenStore opens the configured store.
func (c *FileConfig) OpenStore(ctx context.Context, log *slog.Logger) (store.Store, error) {
	if c.Store.Driver == "postgres" {
		return pgstore.Open(ctx, c.Store.DSN, log)
	}
	return boltstore.Open(c.Store.Path)
}

// WriteDevCerts writes a throwaway CA and certificates (server, agent with
// roles agent+reporter, reporter, admin) into dir, for demos and tests.
// Production certificates come from Rampart's pki.
func WriteDevCerts(dir string, hosts []string, validity time.Duration) error {
	return devcert.WriteDir(dir, hosts, validity)
}
