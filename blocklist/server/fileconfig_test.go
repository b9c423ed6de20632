package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	fc, err := LoadFile("../../examples/blocklist/blocklistd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fc.ServerConfig()
	cfg.setDefaults()
	if cfg.Policy.Threshold != 5 || cfg.Policy.Window != 10*time.Minute || cfg.Policy.MaxBanTTL != 7*24*time.Hour || len(cfg.Allow) != 2 {
		t.Fatalf("example config decodes to %+v", cfg)
	}
	// The commented feed entries are valid too once uncommented.
	data, _ := os.ReadFile("../../examples/blocklist/blocklistd.yaml")
	text := strings.Replace(string(data), "feeds: []\n", "feeds:\n", 1)
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "#  ") {
			l = l[1:]
		}
		lines = append(lines, l)
	}
	path := filepath.Join(t.TempDir(), "feeds.yaml")
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600)
	fc, err = LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if feeds := fc.ServerConfig().Feeds; len(feeds) != 3 || feeds[0].Interval != 12*time.Hour || feeds[0].Limits.MaxShrink != 0.5 ||
		!strings.HasPrefix(feeds[1].URL, "file:///") || feeds[2].Parse.MaxBits4 != 8 {
		t.Fatalf("feeds = %+v", feeds)
	}
}

func TestConfigErrors(t *testing.T) {
	base := "listen: :8443\ntls: {cert: a, key: b, client_ca: c}\nstore: {path: x.db}\n"
	tests := []struct{ yaml, want string }{
		{base + "polcy: {}\n", `cfg.yaml:4: unknown key "polcy" (did you mean "policy"?)`},
		{"listen: :8443\nstore: {path: x.db}\n", "tls: cert_dir (as written by `pki bootstrap`), or cert, key and client_ca, are required"},
		{strings.Replace(base, "{path: x.db}", "{driver: mysql}", 1), `store.driver "mysql"`},
		{base + "allow: [10.0.0.1/8]\n", "host bits set"},
		{base + "feeds: [{name: a, url: ftp://x}]\n", `feeds[0].url "ftp://x"`},
		{base + "feeds: [{name: a, url: 'http://x'}, {name: a, url: 'http://y'}]\n", `feeds[1].name "a"`},
		{base + "policy: {window: soon}\n", "invalid duration"},
		{base + "policy: {ipv6_prefix: 8}\n", "policy.ipv6_prefix 8"},
	}
	for _, tc := range tests {
		path := filepath.Join(t.TempDir(), "cfg.yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o600)
		_, err := LoadFile(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tc.yaml, err, tc.want)
		}
	}
}
