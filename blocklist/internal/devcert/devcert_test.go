package devcert

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	if err := WriteDir(dir, []string{"localhost", "127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tests := []struct {
		name  string
		roles []string
	}{
		{"blocklistd", nil},
		{"agent", []string{"urn:rampart:role:agent", "urn:rampart:role:reporter"}},
		{"reporter", []string{"urn:rampart:role:reporter"}},
		{"admin", []string{"urn:rampart:role:admin"}},
	}
	for _, tc := range tests {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, tc.name+".pem"), filepath.Join(dir, tc.name+"-key.pem"))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cert, _ := x509.ParseCertificate(pair.Certificate[0])
		var uris []string
		for _, u := range cert.URIs {
			uris = append(uris, u.String())
		}
		if !slices.Equal(uris, tc.roles) {
			t.Errorf("%s: URIs %v, want %v", tc.name, uris, tc.roles)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: does not chain to the CA: %v", tc.name, err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, tc.name+"-key.pem")); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: key mode %v", tc.name, fi.Mode().Perm())
		}
	}
	srv, _ := tls.LoadX509KeyPair(filepath.Join(dir, "blocklistd.pem"), filepath.Join(dir, "blocklistd-key.pem"))
	leaf, _ := x509.ParseCertificate(srv.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("server certificate not valid for 127.0.0.1: %v", err)
	}
}
