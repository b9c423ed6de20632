// Package devcert mints a throwaway certificate authority and mTLS
// certificates carrying Rampart role URIs (urn:rampart:role:<role>), for
// tests, benchmarks and `blocklistd dev-certs`. Production certificates come
// from Rampart's pki.
package devcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// RoleURIPrefix starts every role URI SAN.
const RoleURIPrefix = "urn:rampart:role:"

// CA is a self-signed certificate authority held in memory.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte
}

// NewCA creates a CA valid for validity from now.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// Pool returns a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf describes a certificate to issue.
type Leaf struct {
	Name  string   // common name
	Roles []string // role URIs added as urn:rampart:role:<role>
	Hosts []string // DNS names or IP addresses (makes it a server certificate too)
	// Validity defaults to 24h.
	Validity time.Duration
}

// Issue signs a leaf and returns its PEM certificate and PEM PKCS#8 key.
func (ca *CA) Issue(l Leaf) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if l.Validity == 0 {
		l.Validity = 24 * time.Hour
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.Name},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(l.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	for _, r := range l.Roles {
		u, err := url.Parse(RoleURIPrefix + r)
		if err != nil {
			return nil, nil, fmt.Errorf("devcert: role %q: %w", r, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	for _, h := range l.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// TLSCert issues a leaf and returns it ready for a tls.Config.
func (ca *CA) TLSCert(l Leaf) (tls.Certificate, error) {
	c, k, err := ca.Issue(l)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(c, k)
}

// WriteDir writes a complete development set into dir: ca.pem, and
// server, agent (roles agent+reporter), reporter and admin certificates as
// NAME.pem / NAME-key.pem. The server certificate is valid for hosts.
func WriteDir(dir string, hosts []string, validity time.Duration) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := NewCA("Rampart development CA", validity)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.PEM, 0o644); err != nil {
		return err
	}
	leaves := []Leaf{
		{Name: "blocklistd", Hosts: hosts},
		{Name: "agent", Roles: []string{"agent", "reporter"}},
		{Name: "reporter", Roles: []string{"reporter"}},
		{Name: "admin", Roles: []string{"admin"}},
	}
	for _, l := range leaves {
		l.Validity = validity
		c, k, err := ca.Issue(l)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, l.Name+".pem"), c, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, l.Name+"-key.pem"), k, 0o600); err != nil {
			return err
		}
	}
	return nil
}
