package agent

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"github.com/rampart-sec/rampart/pkg/config"
)

func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig("../../examples/blocklist/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const dir = "/etc/rampart/tls/blocklist-agent/"
	if c.Server.CA != dir+"root.pem" || c.Server.Cert != dir+"cert.pem" || c.Server.Key != dir+"key.pem" {
		t.Errorf("cert_dir not expanded: %+v", c.Server)
	}
	if time.Duration(c.Firewall.HostAddrsInterval) != DefaultHostAddrsInterval {
		t.Errorf("firewall.host_addrs_interval = %v, want %v", c.Firewall.HostAddrsInterval, DefaultHostAddrsInterval)
	}
	if time.Duration(c.Server.Wait) != time.Minute || c.StateDir != DefaultStateDir || len(c.Detectors) != 2 || c.Firewall.Table != DefaultTable {
		t.Errorf("example config = %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	const base = "server: {url: 'https://b.test:8443', cert_dir: /pki}\n"
	tests := []struct {
		name string
		yaml string
		err  string
	}{
		{"minimal", base, ""},
		{"explicit files", "server: {url: 'https://b.test:8443', ca: /a, cert: /b, key: /c}\n", ""},
		{"http", "server: {url: 'http://b.test:8443', cert_dir: /pki}\n", "want https://"},
		{"no certs", "server: {url: 'https://b.test:8443'}\n", "cert_dir"},
		{"short wait", "server: {url: 'https://b.test', cert_dir: /p, wait: 10ms}\n", "at least 1s"},
		{"backoff order", "server: {url: 'https://b.test', cert_dir: /p, backoff_min: 1m, backoff_max: 1s}\n", "backoff"},
		{"bad allow", base + "firewall: {allow: [10.0.0.0/33]}\n", "firewall.allow"},
		{"unknown key", base + "statedir: /x\n", `unknown key "statedir" (did you mean "state_dir"?)`},
		{"bad level", base + "log_level: loud\n", "log_level"},
		{"pf", base + "firewall: {backend: pf, pfctl: /sbin/pfctl}\n", ""},
		{"bad backend", base + "firewall: {backend: ipfw}\n", "firewall.backend \"ipfw\""},
		{"pf with netns", base + "firewall: {backend: pf, netns: /run/netns/x}\n", "nftables only"},
		{"nftables with pfctl", base + "firewall: {backend: nftables, pfctl: /sbin/pfctl}\n", "pf only"},
		{"pf table name", base + "firewall: {backend: pf, table: 'a b'}\n", "firewall.table"},
		{"host addrs interval", base + "firewall: {host_addrs_interval: 5s}\n", ""},
		{"host addrs interval too short", base + "firewall: {host_addrs_interval: 10ms}\n", "firewall.host_addrs_interval 10ms: want at least 100ms"},
		{"bad detector", base + "detectors: [{type: sshd}]\n", "detectors[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent.yaml")
			os.WriteFile(path, []byte(tt.yaml), 0o600)
			c, err := LoadConfig(path)
			if err == nil && (c.Firewall.Backend == "" || c.Firewall.Table != DefaultTable) {
				t.Errorf("firewall defaults not filled: %+v", c.Firewall)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("LoadConfig: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("LoadConfig error = %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestAllowPrefixes(t *testing.T) {
	var c Config
	if err := config.Decode("a.yaml", []byte("server: {url: 'https://b.test', cert_dir: /p}\nfirewall: {allow: [192.0.2.7, 10.1.2.3/8, '2001:db8::/32']}\n"), &c); err != nil {
		t.Fatal(err)
	}
	got, _ := c.AllowPrefixes()
	want := pfx("192.0.2.7/32", "10.0.0.0/8", "2001:db8::/32")
	if len(got) != len(want) {
		t.Fatalf("AllowPrefixes = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("AllowPrefixes = %v, want %v", got, want)
		}
	}
}

func TestClientCertificateReload(t *testing.T) {
	dir := t.TempDir()
	ca, err := devcert.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, mtime time.Time) {
		c, k, err := ca.Issue(devcert.Leaf{Name: name, Roles: []string{"agent"}})
		if err != nil {
			t.Fatal(err)
		}
		for file, data := range map[string][]byte{"cert.pem": c, "key.pem": k, "root.pem": ca.PEM} {
			p := filepath.Join(dir, file)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, mtime, mtime)
		}
	}
	leafName := func(c *tls.Config) string {
		t.Helper()
		cert, err := c.GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	t0 := time.Now().Add(-time.Hour)
	issue("before-renewal", t0)
	sc := ServerConfig{CertDir: dir, CA: filepath.Join(dir, "root.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	c, err := sc.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := leafName(c); got != "before-renewal" {
		t.Fatalf("certificate %q", got)
	}
	issue("after-renewal", t0.Add(time.Minute))
	if got := leafName(c); got != "after-renewal" {
		t.Errorf("after pki renew rewrote the files: certificate %q, want the new one", got)
	}
	// A half-written renewal keeps the last good pair.
	os.WriteFile(filepath.Join(dir, "key.pem"), []byte("garbage"), 0o600)
	if got := leafName(c); got != "after-renewal" {
		t.Errorf("with a broken key on disk: certificate %q, want the last good one", got)
	}
	os.Remove(filepath.Join(dir, "cert.pem"))
	if got := leafName(c); got != "after-renewal" {
		t.Errorf("with the certificate missing: %q, want the last good one", got)
	}
	if _, err := (&ServerConfig{CA: filepath.Join(dir, "root.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}).TLSConfig(); err == nil {
		t.Error("TLSConfig accepted a missing certificate at start")
	}
}
