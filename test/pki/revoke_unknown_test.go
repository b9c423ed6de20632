package pki_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/pki/client"
)

// Issue 14: "pki revoke 12345 (no such certificate) says 'revoked' and
// exits 0". A serial this CA never issued is an error (exit 1) that says
// so, decimal or hex; a real serial still revokes, once.
func TestRevokeUnknownSerialIsAnError(t *testing.T) {
	c := initBinCA(t, "")
	c.serve(t, c.cfg).waitServing(t, "pki serve")
	for _, serial := range []string{"12345", "0x3039"} {
		code, out := pkiRun(t, c.bin, "revoke", "--config", c.cfg, serial)
		if code != 1 || !strings.Contains(out, "no certificate with serial") || strings.Contains(out, "revoked "+serial) {
			t.Fatalf("pki revoke %s (never issued): exit %d\n%s", serial, code, out)
		}
	}
	tok := c.token(t, "web1", "--san", "localhost")
	host := filepath.Join(t.TempDir(), "host")
	if code, out := pkiRun(t, c.bin, "bootstrap", "--ca-url", c.url, "--fingerprint", c.fp, "--token", tok, "--out", host); code != 0 {
		t.Fatalf("bootstrap: exit %d\n%s", code, out)
	}
	serial := certOf(t, filepath.Join(host, client.CertFile)).SerialNumber.String()
	if code, out := pkiRun(t, c.bin, "revoke", "--config", c.cfg, serial); code != 0 || !strings.Contains(out, "revoked "+serial) {
		t.Fatalf("pki revoke %s (issued): exit %d\n%s", serial, code, out)
	}
	if code, out := pkiRun(t, c.bin, "renew", "--dir", host, "--force"); code == 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("renew after revoke: exit %d\n%s", code, out)
	}
}
