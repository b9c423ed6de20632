package acme

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimalConfig = `
state_dir: /var/lib/rampart/acme
accounts:
  le:
    email: ops@example.com
certificates:
  - domains: [www.example.com, example.com]
    challenge:
      http01: {}
`

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig("acme.yaml", []byte(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	cert := c.Certificates[0]
	checks := []struct{ name, got, want string }{
		{"directory", c.Accounts["le"].Directory, LetsEncryptProduction},
		{"name", cert.Name, "www.example.com"},
		{"account", cert.Account, "le"},
		{"key type", cert.KeyType, "ec256"},
		{"dir", cert.Output.Dir, "/var/lib/rampart/acme/certs/www.example.com"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if cert.Challenge.HTTP01.Port != 80 || c.Concurrency != 4 || cert.Output.keyMode != 0o600 || cert.Output.certMode != 0o644 {
		t.Errorf("defaults: port %d, concurrency %d, modes %o %o", cert.Challenge.HTTP01.Port, c.Concurrency, cert.Output.keyMode, cert.Output.certMode)
	}
}

func TestConfigStaging(t *testing.T) {
	c, err := ParseConfig("acme.yaml", []byte(strings.Replace(minimalConfig, "email:", "directory: staging\n    email:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Accounts["le"].Directory != LetsEncryptStaging {
		t.Fatalf("staging = %s", c.Accounts["le"].Directory)
	}
}

// The example config under examples/ must stay valid.
func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig(filepath.Join("..", "examples", "acme", "acme.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificates) < 2 || c.Certificates[1].Challenge.DNS01 == nil || c.Certificates[1].Challenge.DNS01.Provider != "ovh" {
		t.Fatalf("example config lost its DNS-01 OVH certificate")
	}
}

// Errors name the file, and the line when YAML knows it.
func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, edit, want string }{
		{"unknown key", "    challenge:\n", `acme.yaml:8: unknown key "challenge_typo"`},
		{"syntax", "  - domains", "acme.yaml:6:"},
		{"bad duration", "", "acme.yaml:3: invalid duration"},
		{"two challenges", "      http01: {}\n", "choose exactly one of"},
		{"bad key type", "", `key_type "dsa"`},
		{"wildcard without dns", "", "wildcard names need dns01"},
		{"bad mode", "", "must not be readable by others"},
		{"no account", "", "accounts: at least one account"},
		{"relative path", "", "must be an absolute path"},
	}
	docs := map[string]string{
		"unknown key":          strings.Replace(minimalConfig, "    challenge:\n", "    challenge_typo:\n", 1),
		"syntax":               strings.Replace(minimalConfig, "  - domains", "  - domains: [a\n  -", 1),
		"bad duration":         "\nstate_dir: /x\nhook_timeout: soon\n",
		"two challenges":       strings.Replace(minimalConfig, "      http01: {}\n", "      http01: {}\n      webroot: {path: /var/www}\n", 1),
		"bad key type":         strings.Replace(minimalConfig, "    challenge:", "    key_type: dsa\n    challenge:", 1),
		"wildcard without dns": strings.Replace(minimalConfig, "www.example.com", "'*.example.com'", 1),
		"bad mode":             strings.Replace(minimalConfig, "    challenge:", "    output: {mode: '0644'}\n    challenge:", 1),
		"no account":           "state_dir: /x\ncertificates: []\n",
		"relative path":        strings.Replace(minimalConfig, "/var/lib/rampart/acme", "relative/dir", 1),
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "acme.yaml")
			os.WriteFile(path, []byte(docs[c.name]), 0o600)
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "acme.yaml") {
				t.Fatalf("error = %v, want it to name the file and contain %q", err, c.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimalConfig))
	if b, err := os.ReadFile(filepath.Join("..", "examples", "acme", "acme.yaml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("accounts: {a: {directory: 'https://x/dir', eab: {kid: k, hmac_key: h}}}\ncertificates: [{domains: ['*.a.b'], challenge: {dns01: {provider: ovh, env: {A: b}}}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("fuzz.yaml", data)
		if err != nil {
			return
		}
		// A config that validates must be usable: every certificate has an
		// account, names, one challenge and absolute output paths.
		for _, cert := range c.Certificates {
			if c.Accounts[cert.Account] == nil || len(cert.Domains) == 0 || !filepath.IsAbs(cert.Output.Dir) {
				t.Fatalf("validated config is unusable: %+v", cert)
			}
		}
	})
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour, 24 * time.Hour, 24 * time.Hour}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if backoff(1000) != 24*time.Hour {
		t.Error("backoff does not cap")
	}
}
