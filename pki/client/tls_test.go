package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testPKI writes a root-signed bundle for cn into dir.
func testPKI(t *testing.T, dir string, root *x509.Certificate, rootKey *ecdsa.PrivateKey, cn string, roles ...string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{cn},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, r := range roles {
		u, _ := url.Parse(RoleURI(r))
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	if err := writeBundle(dir, &Bundle{Key: key, Chain: []*x509.Certificate{leaf}, Root: root}, true, FileOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestSourceMTLSAndReload(t *testing.T) {
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, rt, rt, &rootKey.PublicKey, rootKey)
	root, _ := x509.ParseCertificate(der)

	srvDir, cliDir := filepath.Join(t.TempDir(), "srv"), filepath.Join(t.TempDir(), "cli")
	testPKI(t, srvDir, root, rootKey, "server.test")
	testPKI(t, cliDir, root, rootKey, "agent.test", "agent", "reporter")
	srvSrc, err := NewSource(srvDir)
	if err != nil {
		t.Fatal(err)
	}
	cliSrc, err := NewSource(cliDir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvSrc.ServerConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan []string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err == nil {
				peers <- Roles(tc.ConnectionState().PeerCertificates[0])
			} else {
				peers <- nil
			}
			c.Close()
		}
	}()
	dial := func() *x509.Certificate {
		cfg := cliSrc.ClientConfig()
		cfg.ServerName = "server.test"
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	first := dial()
	if got := <-peers; len(got) != 2 || got[0] != "agent" {
		t.Fatalf("server saw roles %v", got)
	}
	// A renewal rewrites the files; the next handshake serves the new leaf.
	testPKI(t, srvDir, root, rootKey, "server.test")
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(filepath.Join(srvDir, CertFile), future, future)
	srvSrc.mu.Lock()
	srvSrc.checked = time.Time{}
	srvSrc.mu.Unlock()
	second := dial()
	<-peers
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Error("server kept the old certificate after the files changed")
	}
}
