package pemcert_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/rampart-sec/rampart/pkg/pemcert"
)

// Parse reads a chain as pki and acme write it (leaf first), skipping the
// key of a combined key+chain file.
func ExampleParse() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "web1.internal"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	combined := append(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)

	certs, err := pemcert.Parse(combined)
	fmt.Println(len(certs), certs[0].Subject.CommonName, err)
	_, err = pemcert.Parse(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	fmt.Println(err)
	// Output:
	// 1 web1.internal <nil>
	// no CERTIFICATE block
}
