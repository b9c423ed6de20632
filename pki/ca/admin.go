package ca

import (
	"fmt"
	"math/big"
	"os"

	"github.com/rampart-sec/rampart/pki/client"
)

// The CA host's own administration ("pki token", "pki revoke", "pki
// ssh-sign", "pki list"): the provisioner key signs the request, the
// client carries it to the running "pki serve".

// OpenProvisioner loads the provisioner key with the root certificate's
// fingerprint pinned in the tokens it mints (see [Config.LoadProvisioner]).
func (c *Config) OpenProvisioner() (*client.Provisioner, error) {
	fp, err := c.RootFingerprint()
	if err != nil {
		return nil, err
	}
	return c.LoadProvisioner(fp)
}

// Client returns a client of the CA at the config's url, trusting its
// root certificate.
func (c *Config) Client() (*client.Client, error) {
	b, err := os.ReadFile(c.Path(c.RootCert))
	if err != nil {
		return nil, err
	}
	return client.New(c.URL, client.CertPool(b))
}

// ParseSerial reads a certificate serial number as an operator types it,
// decimal or hex with 0x, and returns it in decimal, as the CA stores it.
func ParseSerial(s string) (string, error) {
	sn, ok := new(big.Int).SetString(s, 0)
	if !ok || sn.Sign() <= 0 {
		return "", fmt.Errorf("serial %q: want a decimal number or hex with 0x", s)
	}
	return sn.String(), nil
}
