package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	pkiclient "github.com/rampart-sec/rampart/pki/client"
)

// AdminConn says how an operator's tool reaches blocklistd's admin API:
// the daemon's URL and an admin client certificate, either from the
// directory "pki bootstrap" writes (CertDir: cert.pem, key.pem, root.pem)
// or as three files (Cert, Key and CA, the bundle that signed the
// daemon's certificate).
type AdminConn struct {
	URL, CertDir, Cert, Key, CA string
}

// Dial returns a [Client] for a's daemon. CertDir, when set, wins over
// Cert, Key and CA and is loaded as the agent and the daemon load theirs.
func (a AdminConn) Dial() (*Client, error) {
	if a.CertDir != "" && a.URL != "" {
		src, err := pkiclient.NewSource(a.CertDir)
		if err != nil {
			return nil, fmt.Errorf("admin certificate: %w", err)
		}
		return New(Config{URL: a.URL, TLS: src.ClientConfig()})
	}
	if a.URL == "" || a.Cert == "" || a.Key == "" || a.CA == "" {
		return nil, errors.New("need --config with a cli: section, or --url with --cert-dir or with --cert, --key and --ca")
	}
	cert, err := tls.LoadX509KeyPair(a.Cert, a.Key)
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	caPEM, err := os.ReadFile(a.CA)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificates", a.CA)
	}
	return New(Config{URL: a.URL, TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}})
}
