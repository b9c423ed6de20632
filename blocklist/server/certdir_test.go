package server

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"github.com/rampart-sec/rampart/pkg/config"
)

// tls.cert_dir: the files default to the directory's, a config naming
// other files as well is refused, and ServerTLS serves the directory's
// certificate and demands client certificates from its root.
func TestCertDir(t *testing.T) {
	dir := t.TempDir()
	ca, err := devcert.NewCA("root", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(devcert.Leaf{Name: "blocklistd", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "root.pem": ca.PEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var fc FileConfig
	if err := config.Decode("c.yaml", []byte("listen: 127.0.0.1:0\nstore: {path: x.db}\ntls: {cert_dir: "+dir+"}\n"), &fc); err != nil {
		t.Fatal(err)
	}
	if fc.TLS.ClientCA != filepath.Join(dir, "root.pem") || fc.TLS.Cert != filepath.Join(dir, "cert.pem") {
		t.Fatalf("cert_dir not expanded: %+v", fc.TLS)
	}
	var bad FileConfig
	err = config.Decode("c.yaml", []byte("listen: :1\nstore: {path: x.db}\ntls: {cert_dir: "+dir+", cert: /elsewhere.pem}\n"), &bad)
	if err == nil || !strings.Contains(err.Error(), "name different files") {
		t.Fatalf("cert_dir and other files: %v", err)
	}
	tc, err := fc.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	if tc.ClientAuth != tls.RequireAndVerifyClientCert || tc.ClientCAs == nil {
		t.Fatalf("cert_dir TLS does not require client certificates: %v", tc.ClientAuth)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	client, _ := ca.TLSCert(devcert.Leaf{Name: "agent", Roles: []string{RoleAgent}})
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}})
	if err != nil {
		t.Fatalf("handshake with the cert_dir certificate: %v", err)
	}
	if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "blocklistd" {
		t.Fatalf("served %q", got)
	}
	c.Close()
}
