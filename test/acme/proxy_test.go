package acme_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// acmeProxy stands between the acme-renew binary and Pebble. It records
// the payload of every new-order request (the binary's transport cannot be
// wrapped as the in-process tests do) and adds "Retry-After: 1" to
// challenge responses, which Pebble sends without one, so lego polls
// after one second instead of five: the crash test issues a certificate
// per step. Pebble builds every URL from the Host header, which the
// proxy passes through, so the client only ever talks to the proxy.
type acmeProxy struct {
	DirectoryURL string
	CAFile       string // the proxy's root, for ca_bundle

	mu     sync.Mutex
	orders []map[string]any
}

func startACMEProxy(t *testing.T, p *testenv.Pebble) *acmeProxy {
	t.Helper()
	target, err := url.Parse(p.DirectoryURL)
	if err != nil {
		t.Fatal(err)
	}
	target.Path = ""
	ap := &acmeProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CAPool}}
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodPost && strings.Contains(resp.Request.URL.Path, "/chalZ/") && resp.Header.Get("Retry-After") == "" {
			resp.Header.Set("Retry-After", "1")
		}
		return nil
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "order-plz") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var jws struct{ Payload string }
			if json.Unmarshal(body, &jws) == nil {
				if raw, err := base64.RawURLEncoding.DecodeString(jws.Payload); err == nil {
					var m map[string]any
					if json.Unmarshal(raw, &m) == nil {
						ap.mu.Lock()
						ap.orders = append(ap.orders, m)
						ap.mu.Unlock()
					}
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	caPEM, cert := mintServerCert(t)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ap.DirectoryURL = srv.URL + "/dir"
	ap.CAFile = filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(ap.CAFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return ap
}

// ordersSeen returns the new-order payloads recorded so far.
func (ap *acmeProxy) ordersSeen() []map[string]any {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return append([]map[string]any(nil), ap.orders...)
}

// mintServerCert makes a root and a server certificate for 127.0.0.1.
func mintServerCert(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acme proxy test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
