package bastion

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/dest"
	"github.com/rampart-sec/rampart/bastion/mfa"
	"github.com/rampart-sec/rampart/pkg/config"
)

// Config is bastion.yaml. examples/bastion/bastion.yaml documents every
// key and its default.
type Config struct {
	Listen            string          `yaml:"listen"`
	HostKeyDir        string          `yaml:"host_key_dir"`
	HostCertificates  []string        `yaml:"host_certificates"`
	StateDir          string          `yaml:"state_dir"`
	UsersDir          string          `yaml:"users_dir"`
	TrustedUserCAKeys []string        `yaml:"trusted_user_ca_keys"`
	Banner            string          `yaml:"banner"`
	LoginGraceTime    config.Duration `yaml:"login_grace_time"`
	IdleTimeout       config.Duration `yaml:"idle_timeout"`
	MaxAuthTries      int             `yaml:"max_auth_tries"`
	MaxStartups       int             `yaml:"max_startups"`
	MaxChannels       int             `yaml:"max_channels"`
	MaxSessions       int             `yaml:"max_sessions"`
	DialTimeout       config.Duration `yaml:"dial_timeout"`
	MetricsListen     string          `yaml:"metrics_listen"`

	// MaxStartupsPerSource caps one address's connections still logging
	// in, like sshd's PerSourceMaxStartups, so one address cannot fill
	// MaxStartups and starve everyone else.
	MaxStartupsPerSource int `yaml:"max_startups_per_source"`

	Audit      AuditConfig      `yaml:"audit"`
	TOTP       TOTPConfig       `yaml:"totp"`
	Duo        *DuoConfig       `yaml:"duo"`
	BruteForce BruteForceConfig `yaml:"brute_force"`
	Blocklist  *BlocklistConfig `yaml:"blocklist"`
	Recording  RecordingConfig  `yaml:"recording"`

	Targets []TargetConfig         `yaml:"targets,omitempty"`
	Groups  map[string]GroupConfig `yaml:"groups,omitempty"`
	Users   map[string]*UserConfig `yaml:"users"`

	// dir is the config file's directory: relative paths start there.
	dir string
	// fromDir names the users read from users_dir (bastion user manages
	// those; the main file's are edited by hand).
	fromDir map[string]bool
	// disabled holds the users with disabled: true, kept out of Users so
	// nothing built from the config lets them in.
	disabled map[string]*UserConfig
}

// AuditConfig: the hash-chained log and its optional syslog copy.
type AuditConfig struct {
	File   string        `yaml:"file"`
	Syslog *SyslogConfig `yaml:"syslog"`
}

// SyslogConfig forwards audit records over TCP+TLS (RFC 5424/5425).
type SyslogConfig struct {
	Addr     string `yaml:"addr"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	AppName  string `yaml:"app_name"`
}

// TOTPConfig: where secrets live and what phone apps display.
type TOTPConfig struct {
	Issuer    string `yaml:"issuer"`
	SecretDir string `yaml:"secret_dir"`
}

// DuoConfig: one Duo Auth API application.
type DuoConfig struct {
	IntegrationKey string          `yaml:"integration_key"`
	SecretKeyFile  string          `yaml:"secret_key_file"`
	APIHost        string          `yaml:"api_host"`
	CAFile         string          `yaml:"ca_file"`
	FailMode       string          `yaml:"fail_mode"`
	Timeout        config.Duration `yaml:"timeout"`
	PushTimeout    config.Duration `yaml:"push_timeout"`
	PollInterval   config.Duration `yaml:"poll_interval"`
}

// BruteForceConfig maps onto guard.Config.
type BruteForceConfig struct {
	Window          config.Duration `yaml:"window"`
	SourceThreshold int             `yaml:"source_threshold"`
	UserThreshold   int             `yaml:"user_threshold"`
	Lockout         config.Duration `yaml:"lockout"`
	ReportThreshold int             `yaml:"report_threshold"`
	BackoffBase     config.Duration `yaml:"backoff_base"`
	BackoffMax      config.Duration `yaml:"backoff_max"`
}

// BlocklistConfig: where to report brute-force sources.
type BlocklistConfig struct {
	URL      string `yaml:"url"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// RecordingConfig is handed to the recorded-session proxy.
type RecordingConfig struct {
	Dir       string          `yaml:"dir"`
	UserCAKey string          `yaml:"user_ca_key"`
	CertTTL   config.Duration `yaml:"cert_ttl"`
	// RecordInput records keystrokes too (off: they hold passwords typed
	// at prompts on the target).
	RecordInput bool `yaml:"record_input"`
	// Retention prunes old recordings; zero values keep everything.
	Retention struct {
		MaxBytes int64           `yaml:"max_bytes"`
		MaxAge   config.Duration `yaml:"max_age"`
	} `yaml:"retention"`
	// OnFailure is "refuse" (default: no session runs unrecorded) or
	// "allow" (the session runs, the gap is audited).
	OnFailure string `yaml:"on_failure"`
}

// Target modes.
const (
	ModeJump   = "jump"
	ModeRecord = "record"
)

// TargetConfig is a named host users can be allowed to reach.
type TargetConfig struct {
	Name     string   `yaml:"name"`
	Addr     string   `yaml:"addr"`
	User     string   `yaml:"user"`
	Modes    []string `yaml:"modes"`
	HostKeys []string `yaml:"host_keys"`
	HostCA   string   `yaml:"host_ca"`
	// Description is shown next to the name in the menu (a phone's 40
	// columns keep about 20 characters of it).
	Description string `yaml:"description"`
}

// GroupConfig lists what a group's members may reach.
type GroupConfig struct {
	Targets []string `yaml:"targets,omitempty"`
}

// Second-factor choices.
const (
	FactorTOTP   = "totp"
	FactorDuo    = "duo"
	FactorEither = "either"
)

// UserConfig is one person: how they prove who they are and where they
// may go. In users_dir each file NAME.yaml holds one UserConfig.
type UserConfig struct {
	Keys         []string `yaml:"keys,omitempty"`
	Principals   []string `yaml:"principals,omitempty"`
	Groups       []string `yaml:"groups,omitempty"`
	Targets      []string `yaml:"targets,omitempty"`
	SecondFactor string   `yaml:"second_factor,omitempty"`
	DuoUsername  string   `yaml:"duo_username,omitempty"`
	// Disabled refuses every login of the user and keeps everything else
	// ("bastion user disable").
	Disabled bool `yaml:"disabled,omitempty"`
}

// LoadConfig reads the file at path (and users_dir, when set), fills in
// defaults and validates.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bastion: %w", err)
	}
	c, err := ParseConfig(path, data)
	if err != nil {
		return nil, err
	}
	if c.UsersDir != "" {
		if err := c.loadUsersDir(); err != nil {
			return nil, err
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	return c, nil
}

// ParseConfig decodes and validates a config held in memory; name is the
// file name used in errors and to resolve relative paths. users_dir is not
// read.
func ParseConfig(name string, data []byte) (*Config, error) {
	c := &Config{}
	c.dir = filepath.Dir(name)
	if err := config.Decode(name, data, c); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) loadUsersDir() error {
	dir := c.Path(c.UsersDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // nobody added yet
	}
	if err != nil {
		return fmt.Errorf("bastion: users_dir: %w", err)
	}
	if c.Users == nil {
		c.Users = map[string]*UserConfig{}
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok || e.IsDir() {
			continue
		}
		if _, dup := c.Users[name]; dup || c.disabled[name] != nil {
			return fmt.Errorf("bastion: users_dir: %s: user %q is also defined in the main config", e.Name(), name)
		}
		var u UserConfig
		if err := config.Load(filepath.Join(dir, e.Name()), &u); err != nil {
			return err
		}
		c.Users[name] = &u
		if c.fromDir == nil {
			c.fromDir = map[string]bool{}
		}
		c.fromDir[name] = true
	}
	return nil
}

// dropDisabled moves disabled users out of Users.
func (c *Config) dropDisabled() {
	for name, u := range c.Users {
		if u != nil && u.Disabled {
			if c.disabled == nil {
				c.disabled = map[string]*UserConfig{}
			}
			c.disabled[name] = u
			delete(c.Users, name)
		}
	}
}

// Path resolves p against the config file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Validate fills defaults and checks the config; it is called by the
// strict loader.
func (c *Config) Validate() error {
	c.dropDisabled()
	if c.Listen == "" {
		c.Listen = ":2222"
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/bastion"
	}
	if c.HostKeyDir == "" {
		c.HostKeyDir = filepath.Join(c.StateDir, "host-keys")
	}
	if c.TOTP.SecretDir == "" {
		c.TOTP.SecretDir = filepath.Join(c.StateDir, "totp")
	}
	if c.TOTP.Issuer == "" {
		c.TOTP.Issuer = "Rampart bastion"
	}
	if c.Audit.File == "" {
		c.Audit.File = filepath.Join(c.StateDir, "audit.jsonl")
	}
	if c.LoginGraceTime == 0 {
		c.LoginGraceTime = config.Duration(2 * time.Minute)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = config.Duration(10 * time.Second)
	}
	if c.MaxAuthTries == 0 {
		c.MaxAuthTries = 6
	}
	if c.MaxStartupsPerSource == 0 {
		c.MaxStartupsPerSource = 10
	}
	if c.MaxStartupsPerSource < 0 {
		return fmt.Errorf("max_startups_per_source: %d must be positive", c.MaxStartupsPerSource)
	}
	if c.MaxStartups == 0 {
		c.MaxStartups = 100
	}
	if c.MaxChannels == 0 {
		c.MaxChannels = 256
	}
	if c.MaxChannels < 0 || c.MaxChannels > 10000 {
		return fmt.Errorf("max_channels: %d is out of range 1..10000", c.MaxChannels)
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 10
	}
	if c.MaxSessions < 0 || c.MaxSessions > c.MaxChannels {
		return fmt.Errorf("max_sessions: %d is out of range 1..max_channels (%d)", c.MaxSessions, c.MaxChannels)
	}
	if c.MaxStartups < 0 {
		return fmt.Errorf("max_startups: %d must be positive", c.MaxStartups)
	}
	if c.MaxAuthTries < 0 || c.MaxAuthTries > 100 {
		return fmt.Errorf("max_auth_tries: %d is out of range 1..100", c.MaxAuthTries)
	}
	switch c.Recording.OnFailure {
	case "", "refuse", "allow":
	default:
		return fmt.Errorf("recording.on_failure: %q is neither refuse nor allow", c.Recording.OnFailure)
	}
	if c.Recording.Retention.MaxBytes < 0 || c.Recording.Retention.MaxAge < 0 {
		return errors.New("recording.retention: max_bytes and max_age must not be negative")
	}
	for i, k := range c.TrustedUserCAKeys {
		if _, err := ParseAuthorizedKey(k); err != nil {
			return fmt.Errorf("trusted_user_ca_keys[%d]: %w", i, err)
		}
	}
	if c.Duo != nil {
		d := c.Duo
		if d.IntegrationKey == "" || d.SecretKeyFile == "" || d.APIHost == "" {
			return errors.New("duo: integration_key, secret_key_file and api_host are all required")
		}
		switch d.FailMode {
		case "":
			d.FailMode = "secure"
		case "secure", "open":
		default:
			return fmt.Errorf("duo: fail_mode %q: want secure or open", d.FailMode)
		}
	}
	if c.Blocklist != nil && c.Blocklist.URL == "" {
		return errors.New("blocklist: url is required")
	}
	if s := c.Audit.Syslog; s != nil && s.Addr == "" {
		return errors.New("audit: syslog: addr is required")
	}
	for _, l := range []struct{ key, addr string }{{"listen", c.Listen}, {"metrics_listen", c.MetricsListen}} {
		if l.addr != "" {
			if err := NewSelf(nil).Add(l.addr); err != nil {
				return fmt.Errorf("%s: %w", l.key, err)
			}
		}
	}
	names, lower := map[string]bool{}, map[string]bool{}
	for i := range c.Targets {
		t := &c.Targets[i]
		if err := t.validate(); err != nil {
			return fmt.Errorf("targets[%d] (%s): %w", i, t.Name, err)
		}
		if lower[strings.ToLower(t.Name)] {
			return fmt.Errorf("targets[%d]: duplicate name %q (names are not case-sensitive)", i, t.Name)
		}
		names[t.Name], lower[strings.ToLower(t.Name)] = true, true
	}
	for g, gc := range c.Groups {
		for _, s := range gc.Targets {
			if _, err := parseAllow(s, names); err != nil {
				return fmt.Errorf("groups: %s: %w", g, err)
			}
		}
	}
	for name, u := range c.Users {
		if u == nil {
			u = &UserConfig{}
			c.Users[name] = u
		}
		if !mfa.ValidUserName(name) {
			return fmt.Errorf("users: %q is not a valid user name (lowercase letters, digits, . _ -)", name)
		}
		if err := u.validate(c, names); err != nil {
			return fmt.Errorf("users: %s: %w", name, err)
		}
	}
	return nil
}

func (t *TargetConfig) validate() error {
	if t.Name == "" || strings.ContainsAny(t.Name, " \t/:%@*?[") {
		return fmt.Errorf("name %q: want a plain word", t.Name)
	}
	if _, err := dest.Parse(t.Addr); err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	if len(t.Modes) == 0 {
		t.Modes = []string{ModeJump}
	}
	for _, m := range t.Modes {
		if m != ModeJump && m != ModeRecord {
			return fmt.Errorf("modes: %q: want jump and/or record", m)
		}
	}
	for i, k := range t.HostKeys {
		if _, err := ParseAuthorizedKey(k); err != nil {
			return fmt.Errorf("host_keys[%d]: %w", i, err)
		}
	}
	if t.HostCA != "" {
		if _, err := ParseAuthorizedKey(t.HostCA); err != nil {
			return fmt.Errorf("host_ca: %w", err)
		}
	}
	if slices.Contains(t.Modes, ModeRecord) && len(t.HostKeys) == 0 && t.HostCA == "" {
		return errors.New("a record target needs host_keys or host_ca: the bastion must know whom it logs in to")
	}
	return nil
}

func (u *UserConfig) validate(c *Config, targets map[string]bool) error {
	if len(u.Keys) == 0 && len(c.TrustedUserCAKeys) == 0 {
		return errors.New("no keys and no trusted_user_ca_keys: this user could never log in")
	}
	for i, k := range u.Keys {
		pk, err := ParseAuthorizedKey(k)
		if err != nil {
			return fmt.Errorf("keys[%d]: %w", i, err)
		}
		if err := CheckKeyType(pk); err != nil {
			return fmt.Errorf("keys[%d]: %w", i, err)
		}
	}
	switch u.SecondFactor {
	case "":
		u.SecondFactor = FactorTOTP
		if c.Duo != nil {
			u.SecondFactor = FactorEither
		}
	case FactorTOTP, FactorEither:
	case FactorDuo:
		if c.Duo == nil {
			return errors.New("second_factor duo, but no duo section is configured")
		}
	default:
		return fmt.Errorf("second_factor %q: want totp, duo or either", u.SecondFactor)
	}
	for _, g := range u.Groups {
		if _, ok := c.Groups[g]; !ok {
			return fmt.Errorf("groups: unknown group %q", g)
		}
	}
	for _, s := range u.Targets {
		if _, err := parseAllow(s, targets); err != nil {
			return err
		}
	}
	return nil
}

// ParseAuthorizedKey parses one authorized_keys-style line ("type base64
// [comment]").
func ParseAuthorizedKey(s string) (gossh.PublicKey, error) {
	pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("invalid public key %q: %w", abbreviate(s), err)
	}
	return pk, nil
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// CheckKeyType accepts ed25519, ECDSA, RSA of at least 2048 bits and the
// FIDO security-key types; DSA and short RSA keys are refused.
func CheckKeyType(pk gossh.PublicKey) error {
	switch pk.Type() {
	case gossh.KeyAlgoED25519, gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521,
		gossh.KeyAlgoSKED25519, gossh.KeyAlgoSKECDSA256:
		return nil
	case gossh.KeyAlgoRSA:
		if ck, ok := pk.(gossh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() >= 2048 {
				return nil
			}
		}
		return errors.New("RSA keys must have at least 2048 bits")
	}
	return fmt.Errorf("key type %s is not accepted", pk.Type())
}

// allowRule is one entry of a user's or group's targets list: a named
// target, or a host pattern (glob or CIDR) with ports.
type allowRule struct {
	name   string       // named target
	glob   string       // host glob, lowercased
	prefix netip.Prefix // or an address range
	ports  []uint16     // nil: any port
}

// parseAllow parses "NAME", "HOSTGLOB:PORTS", "CIDR:PORTS" or
// "[IPV6CIDR]:PORTS" where PORTS is "22", "22,2222" or "*".
func parseAllow(s string, targets map[string]bool) (allowRule, error) {
	if targets[s] {
		return allowRule{name: s}, nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return allowRule{}, fmt.Errorf("target %q: not a target name, and no :PORT (write host:22 or host:*)", s)
	}
	host, ports := s[:i], s[i+1:]
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return allowRule{}, fmt.Errorf("target %q: empty host", s)
	}
	// Addresses and ranges in their canonical form (bastion/dest), so a
	// rule matches every spelling of the addresses it covers.
	var r allowRule
	if strings.Contains(host, "/") {
		p, err := dest.ParsePrefix(host)
		if err != nil {
			return allowRule{}, fmt.Errorf("target %q: %w", s, err)
		}
		r.prefix = p
	} else if h, err := dest.ParseHost(host); err == nil {
		if a, ok := h.Addr(); ok {
			r.prefix = netip.PrefixFrom(a, a.BitLen())
		} else {
			r.glob = h.Name()
		}
	} else if strings.ContainsAny(host, "*?[") {
		if _, err := path.Match(host, ""); err != nil {
			return allowRule{}, fmt.Errorf("target %q: bad pattern: %w", s, err)
		}
		r.glob = strings.ToLower(strings.TrimSuffix(host, "."))
	} else {
		return allowRule{}, fmt.Errorf("target %q: %w", s, err)
	}
	if ports != "*" {
		for p := range strings.SplitSeq(ports, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
			if err != nil || n == 0 {
				return allowRule{}, fmt.Errorf("target %q: invalid port %q", s, p)
			}
			r.ports = append(r.ports, uint16(n))
		}
	}
	return r, nil
}

func (r allowRule) portOK(port uint16) bool {
	return r.ports == nil || slices.Contains(r.ports, port)
}

// keysEqual compares two public keys by their wire form.
func keysEqual(a, b gossh.PublicKey) bool {
	return bytes.Equal(a.Marshal(), b.Marshal())
}
