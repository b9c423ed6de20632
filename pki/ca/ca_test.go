package ca

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInit(t *testing.T) {
	dir := t.TempDir()
	res, err := Init(dir, InitOptions{Name: "Test", Listen: "127.0.0.1:9999"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Fingerprint) != 64 {
		t.Fatalf("fingerprint %q", res.Fingerprint)
	}
	for _, f := range []string{rootKeyFile, interKeyFile, sshHostKeyFile, sshUserKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "ENCRYPTED PRIVATE KEY") {
			t.Errorf("%s not encrypted", f)
		}
	}
	for _, f := range []string{rootKeyFile, interKeyFile, provKeyFile, defaultPassword, ConfigFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, fi.Mode().Perm())
		}
	}
	cfg, err := LoadConfig(res.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if fp, err := cfg.RootFingerprint(); err != nil || fp != res.Fingerprint {
		t.Errorf("RootFingerprint %q %v, want %q", fp, err, res.Fingerprint)
	}
	if cfg.URL != "https://localhost:9999" {
		t.Errorf("url %q", cfg.URL)
	}
	p, err := cfg.LoadProvisioner(res.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if p.Key.IsPublic() {
		t.Error("provisioner key is public")
	}
	if !cfg.Leaf.AllowRenewalAfterExpiry || cfg.RenewalAfterExpiryLimit() != DefaultRenewalAfterExpiryMax {
		t.Errorf("pki init: allow %v, limit %s; want true, 30d", cfg.Leaf.AllowRenewalAfterExpiry, cfg.RenewalAfterExpiryLimit())
	}
	y, err := os.ReadFile(res.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "renewal_after_expiry_max: 30d\n") {
		t.Errorf("pki init does not write the limit explicitly:\n%s", y)
	}
	if _, err := Init(dir, InitOptions{}); !errors.Is(err, ErrExists) {
		t.Errorf("second init: %v, want ErrExists", err)
	}
}

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{"defaults", "password_file: pw\n", ""},
		{"unknown-key", "password_file: pw\nlisten_addr: x\n", "listen_addr"},
		{"min-below-floor", "leaf:\n  min: 1m\n", "below the 5m floor"},
		{"default-above-max", "leaf:\n  default: 60d\n  max: 30d\n", "outside"},
		{"bad-store", "store:\n  type: mysql\n", "want bbolt or postgresql"},
		{"pg-needs-dsn", "store:\n  type: postgresql\n", "needs dsn"},
		{"bad-ip", "policy:\n  ip: [10.0.0.0/33]\n", "policy: ip"},
		{"http-url", "url: http://ca:80\n", "want https"},
		{"days", "leaf:\n  default: 7d\n  max: 30d\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "pki.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(p)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Store.Type != "bbolt" || c.Listen != "127.0.0.1:9443" || len(c.Roles) != 3 {
					t.Errorf("defaults: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// TestRenewalAfterExpiryMax: absent means 30 days (only used when renewal
// after expiry is on); an explicit value is kept, days included; 0 or a
// negative value is an error naming the file, the line and the value.
func TestRenewalAfterExpiryMax(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		name, yaml string
		want       time.Duration // RenewalAfterExpiryLimit
		err        string        // after "<file>:"
	}{
		{"absent-on", "leaf:\n  allow_renewal_after_expiry: true\n", 30 * day, ""},
		{"absent-off", "leaf:\n  allow_renewal_after_expiry: false\n", 0, ""},
		{"absent-no-leaf", "password_file: pw\n", 0, ""},
		{"days", "leaf:\n  allow_renewal_after_expiry: true\n  renewal_after_expiry_max: 7d\n", 7 * day, ""},
		{"days-hours", "leaf:\n  allow_renewal_after_expiry: true\n  renewal_after_expiry_max: 1d12h\n", 36 * time.Hour, ""},
		{"hours", "leaf:\n  allow_renewal_after_expiry: true\n  renewal_after_expiry_max: 90m\n", 90 * time.Minute, ""},
		{"set-but-off", "leaf:\n  renewal_after_expiry_max: 7d\n", 0, ""},
		{"zero", "password_file: pw\nleaf:\n  allow_renewal_after_expiry: true\n  renewal_after_expiry_max: 0\n", 0,
			`4: leaf.renewal_after_expiry_max "0": must be positive`},
		{"zero-days", "leaf:\n  renewal_after_expiry_max: 0d\n", 0, `2: leaf.renewal_after_expiry_max "0d": must be positive`},
		{"negative", "leaf:\n  allow_renewal_after_expiry: true\n\n  renewal_after_expiry_max: -1h\n", 0,
			`4: leaf.renewal_after_expiry_max "-1h": must be positive`},
		{"negative-days", "leaf:\n  renewal_after_expiry_max: -30d\n", 0, `2: leaf.renewal_after_expiry_max "-30d": must be positive`},
		{"garbage", "leaf:\n  renewal_after_expiry_max: forever\n", 0, `2: invalid duration "forever"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "pki.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), p+":"+tc.err) {
					t.Fatalf("err %v, want %q", err, p+":"+tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.RenewalAfterExpiryLimit(); got != tc.want {
				t.Errorf("limit %s, want %s", got, tc.want)
			}
		})
	}
}

// The documented example must stay loadable under strict decoding.
func TestExampleConfigLoads(t *testing.T) {
	c, err := LoadConfig(filepath.Join("..", "..", "examples", "pki", "pki.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "https://ca.internal:9443" || c.SSHUserProvisioner.Name != "ssh-users" || len(c.Policy.DNS) != 2 ||
		c.RenewalAfterExpiryLimit() != DefaultRenewalAfterExpiryMax {
		t.Errorf("example config: %+v", c)
	}
}
