package client

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.step.sm/crypto/pemutil"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
	"github.com/rampart-sec/rampart/pkg/pemcert"
)

// File names inside a certificate directory.
const (
	KeyFile  = "key.pem"
	CertFile = "cert.pem"
	RootFile = "root.pem"
)

// RolePrefix starts the URI SAN that names a Rampart role.
const RolePrefix = "urn:rampart:role:"

// RoleURI returns the URI SAN for role, e.g. urn:rampart:role:agent.
func RoleURI(role string) string { return RolePrefix + role }

// Roles returns the Rampart roles named by cert's URI SANs.
func Roles(cert *x509.Certificate) []string {
	var roles []string
	for _, u := range cert.URIs {
		if s := u.String(); len(s) > len(RolePrefix) && s[:len(RolePrefix)] == RolePrefix {
			roles = append(roles, s[len(RolePrefix):])
		}
	}
	return roles
}

// FileOptions says who owns the files written into a certificate directory.
// Zero values mean: current user and group, key 0600, certificates 0644.
type FileOptions struct {
	User, Group string
	KeyMode     fs.FileMode
	CertMode    fs.FileMode
}

func (o FileOptions) resolve() (key, cert atomicfile.Options, err error) {
	km, cm := o.KeyMode, o.CertMode
	if km == 0 {
		km = 0o600
	}
	if cm == 0 {
		cm = 0o644
	}
	if km&^0o777 != 0 || cm&^0o777 != 0 {
		return key, cert, fmt.Errorf("mode %#o/%#o: want permission bits only (0600, 0640)", km, cm)
	}
	if km&0o007 != 0 {
		return key, cert, fmt.Errorf("key mode %#o lets every user read the private key", km)
	}
	if key, err = atomicfile.Owner(km, o.User, o.Group); err != nil {
		return key, cert, err
	}
	cert, err = atomicfile.Owner(cm, o.User, o.Group)
	return key, cert, err
}

// Bundle is the content of a certificate directory.
type Bundle struct {
	Key   crypto.Signer
	Chain []*x509.Certificate // leaf first, then intermediates
	Root  *x509.Certificate
}

// Leaf returns the end-entity certificate.
func (b *Bundle) Leaf() *x509.Certificate { return b.Chain[0] }

// LoadBundle reads key.pem, cert.pem and root.pem from dir.
func LoadBundle(dir string) (*Bundle, error) {
	keyPath := filepath.Join(dir, KeyFile)
	k, err := pemutil.Read(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("read key %s: %T is not a signing key", keyPath, k)
	}
	chain, err := readCerts(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, err
	}
	roots, err := readCerts(filepath.Join(dir, RootFile))
	if err != nil {
		return nil, err
	}
	return &Bundle{Key: signer, Chain: chain, Root: roots[0]}, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificates: %w", err)
	}
	certs, err := pemcert.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read certificates %s: %w", path, err)
	}
	return certs, nil
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// writeBundle writes root, then key, then chain: a reader that sees the new
// chain also sees the key that matches it.
func writeBundle(dir string, b *Bundle, writeKey bool, opts FileOptions) error {
	keyOpts, certOpts, err := opts.resolve()
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, RootFile), encodeCerts(b.Root), certOpts); err != nil {
		return err
	}
	if writeKey {
		blk, err := pemutil.Serialize(b.Key, pemutil.WithPKCS8(true))
		if err != nil {
			return fmt.Errorf("encode key: %w", err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, KeyFile), pem.EncodeToMemory(blk), keyOpts); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(filepath.Join(dir, CertFile), encodeCerts(b.Chain...), certOpts)
}
