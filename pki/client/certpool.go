package client

import (
	"crypto/x509"
	"encoding/pem"
)

// CertPool returns a pool of every certificate in the PEM data (a root.pem
// or a CA bundle), skipping blocks that do not parse as certificates.
func CertPool(pemData []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	for {
		var b *pem.Block
		b, pemData = pem.Decode(pemData)
		if b == nil {
			return pool
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			pool.AddCert(c)
		}
	}
}
