package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// labelRE is RFC 1123's host name label, written independently of
// checkDNSName as the reference it is checked against.
var labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func referenceDNSName(n string) bool {
	n = strings.TrimPrefix(n, "*.")
	if len(n) == 0 || len(n) > 253 {
		return false
	}
	for _, l := range strings.Split(n, ".") {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// FuzzCheckSAN: a name CheckSAN accepts as a DNS name is exactly one the
// reference accepts, and NewCSR files it as a DNS name unchanged (what the
// CA will sign); everything else CheckSAN accepts is an IP, an e-mail
// address or a URI, and lands in that field of the request.
func FuzzCheckSAN(f *testing.F) {
	for _, s := range []string{"web1", "web1.internal", "*.rampart.test", "10.0.0.7", "::1", "bad name!", "-a.b", "a-.b",
		"under_score", "ops@example.com", "urn:rampart:role:agent", "spiffe://x/y", "a..b", strings.Repeat("a", 64), "é.example", ""} {
		f.Add(s)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Fuzz(func(t *testing.T, n string) {
		err := CheckSAN(n)
		isOther := strings.ContainsRune(n, '@') || strings.Contains(n, ":")
		if !isOther && (err == nil) != referenceDNSName(n) {
			t.Fatalf("CheckSAN(%q) = %v, reference says valid=%v", n, err, referenceDNSName(n))
		}
		if err != nil {
			return
		}
		csr, cerr := NewCSR(key, "cn", []string{n})
		if cerr != nil {
			t.Fatalf("CheckSAN accepted %q but NewCSR failed: %v", n, cerr)
		}
		total := len(csr.DNSNames) + len(csr.IPAddresses) + len(csr.EmailAddresses) + len(csr.URIs)
		if total != 1 {
			t.Fatalf("%q became %d SANs", n, total)
		}
		if !isOther && len(csr.IPAddresses) == 0 && !slices.Equal(csr.DNSNames, []string{n}) {
			t.Fatalf("%q filed as %v", n, csr.DNSNames)
		}
	})
}
