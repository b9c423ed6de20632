package ca

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// The documented example must stay loadable under strict decoding.
func TestExampleConfigLoads(t *testing.T) {
	c, err := LoadConfig(filepath.Join("..", "..", "examples", "pki", "pki.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "https://ca.internal:9443" || c.SSHUserProvisioner.Name != "ssh-users" || len(c.Policy.DNS) != 2 {
		t.Errorf("example config: %+v", c)
	}
}
