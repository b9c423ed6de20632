package acme_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/test/testenv"
)

// A CA that requires External Account Binding: the right key registers
// and issues; a wrong one fails the certificate without touching disk.
func TestExternalAccountBinding(t *testing.T) {
	t.Parallel()
	const kid, hmac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	h := newHarness(t, testenv.PebbleOptions{EABKeys: map[string]string{kid: hmac}})
	hmacFile := filepath.Join(h.dir, "hmac")
	os.WriteFile(hmacFile, []byte(hmac+"\n"), 0o600)
	for _, tc := range []struct {
		name, kid string
		ok        bool
	}{{"wrong-kid", "kid-9", false}, {"right-kid", kid, true}} {
		h.dir = t.TempDir()
		h.writeConfig(cert{"eab", "http01", []string{"eab.example.com"}, ""})
		data, _ := os.ReadFile(h.cfgPath)
		doc := strings.Replace(string(data), "    email: ops@example.com\n",
			"    email: ops@example.com\n    eab: {kid: "+tc.kid+", hmac_key_file: "+hmacFile+"}\n", 1)
		os.WriteFile(h.cfgPath, []byte(doc), 0o600)
		cfg, err := acme.LoadConfig(h.cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		sum := h.run(cfg, time.Now())
		r := result(t, sum, "eab")
		if (r.Action == acme.Renewed) != tc.ok {
			t.Fatalf("%s: %+v", tc.name, r)
		}
		if _, err := os.Stat(filepath.Join(h.dir, "links", "eab.key")); (err == nil) != tc.ok {
			t.Fatalf("%s: key on disk: %v", tc.name, err)
		}
	}
}
