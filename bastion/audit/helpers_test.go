package audit_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http/httptest"
	"testing"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func ioReadFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

// testCert borrows httptest's self-signed certificate (for example.com
// and 127.0.0.1).
func testCert(t *testing.T, srv *httptest.Server) tls.Certificate {
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.TLS.Certificates[0]
}

func certPool(t *testing.T, srv *httptest.Server) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(srv.Certificate())
	return p
}
