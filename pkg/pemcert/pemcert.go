// Package pemcert reads the PEM certificate chains that pki and acme write
// and check (leaf first, then intermediates).
package pemcert

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
)

// ErrNoCertificate is returned for input without any CERTIFICATE block.
var ErrNoCertificate = errors.New("no CERTIFICATE block")

// Parse returns every CERTIFICATE block of data in order, skipping other
// block types (a combined key+chain file parses too).
func Parse(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificate
	}
	return certs, nil
}
