package server

import (
	"crypto/tls"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
)

func devcertLeaf(name string, roles ...string) devcert.Leaf {
	return devcert.Leaf{Name: name, Roles: roles}
}

func tlsClientConfig(h *harness, cert tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: h.ca.Pool(), Certificates: []tls.Certificate{cert}}
}

func tlsClientConfigNoCert(h *harness) *tls.Config { return &tls.Config{RootCAs: h.ca.Pool()} }

// newOtherCAClient has an agent certificate from a CA the server does not trust.
func newOtherCAClient(h *harness) (*client.Client, error) {
	other, err := devcert.NewCA("rogue CA", time.Hour)
	if err != nil {
		return nil, err
	}
	cert, err := other.TLSCert(devcert.Leaf{Name: "agent", Roles: []string{"agent", "admin"}})
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{URL: h.url, TLS: tlsClientConfig(h, cert)})
}
