package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/pemutil"
	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
	"github.com/rampart-sec/rampart/pki/client"
)

// InitOptions describe a new CA.
type InitOptions struct {
	Name     string   // "Rampart" -> "Rampart Root CA", "Rampart Intermediate CA"
	Listen   string   // default 127.0.0.1:9443
	DNSNames []string // default localhost (+ the listen host)
	// PasswordFile encrypts every private key. If it does not exist, Init
	// writes a random password there (0600).
	PasswordFile string
	StoreDSN     string // empty: bbolt in the CA directory
	NoSSH        bool
	Metrics      string // Prometheus listen address for pki serve; empty = none
	AuditLog     string // audit log file; empty = the daemon's log
	Now          func() time.Time
}

// InitResult says what Init created.
type InitResult struct {
	ConfigPath  string
	Fingerprint string // SHA-256 of the root, what hosts pin
	Root        *x509.Certificate
}

// File names Init writes inside the CA directory.
const (
	ConfigFile       = "pki.yaml"
	rootCertFile     = "root_ca.crt"
	rootKeyFile      = "root_ca.key"
	interCertFile    = "intermediate_ca.crt"
	interKeyFile     = "intermediate_ca.key"
	sshHostKeyFile   = "ssh_host_ca_key"
	sshUserKeyFile   = "ssh_user_ca_key"
	provPubFile      = "provisioner.pub.json"
	provKeyFile      = "provisioner.key.jwe"
	sshProvPubFile   = "ssh-users.pub.json"
	sshProvKeyFile   = "ssh-users.key.jwe"
	defaultPassword  = "password.txt"
	privateFileMode  = 0o600
	publicFileMode   = 0o644
	caValidity       = 10 * 365 * 24 * time.Hour
	intermediateLife = 5 * 365 * 24 * time.Hour
)

// ErrExists means the directory already holds a CA; Init never overwrites keys.
var ErrExists = errors.New("a CA already exists here")

// Init creates a CA in dir.
func Init(dir string, o InitOptions) (*InitResult, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if o.Name == "" {
		o.Name = "Rampart"
	}
	cfgPath := filepath.Join(dir, ConfigFile)
	if _, err := os.Stat(cfgPath); err == nil {
		return nil, fmt.Errorf("pki init %s: %w", dir, ErrExists)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki init: %w", err)
	}
	pwFile := o.PasswordFile
	if pwFile == "" {
		pwFile = filepath.Join(dir, defaultPassword)
	}
	if _, err := os.Stat(pwFile); errors.Is(err, os.ErrNotExist) {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(pwFile, []byte(hex.EncodeToString(b[:])+"\n"), priv()); err != nil {
			return nil, fmt.Errorf("pki init: password file: %w", err)
		}
	}
	pw, err := client.ReadPassword(pwFile)
	if err != nil {
		return nil, fmt.Errorf("pki init: %w", err)
	}

	t := now().Add(-time.Minute).UTC()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	root, err := createCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: o.Name + " Root CA", Organization: []string{o.Name}},
		NotBefore:             t,
		NotAfter:              t.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, rootKey, rootKey)
	if err != nil {
		return nil, err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	inter, err := createCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: o.Name + " Intermediate CA", Organization: []string{o.Name}},
		NotBefore:             t,
		NotAfter:              t.Add(intermediateLife),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	write := func(name string, data []byte, mode os.FileMode) error {
		o := atomicfile.Options{Mode: mode, UID: -1, GID: -1}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), data, o); err != nil {
			return fmt.Errorf("pki init: %w", err)
		}
		return nil
	}
	writeKey := func(name string, k crypto.PrivateKey) error {
		blk, err := pemutil.Serialize(k, pemutil.WithPassword(pw), pemutil.WithPKCS8(true))
		if err != nil {
			return fmt.Errorf("pki init: encrypt %s: %w", name, err)
		}
		return write(name, pem.EncodeToMemory(blk), privateFileMode)
	}
	certPEM := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if err := writeKey(rootKeyFile, rootKey); err != nil {
		return nil, err
	}
	if err := writeKey(interKeyFile, interKey); err != nil {
		return nil, err
	}
	if err := write(rootCertFile, certPEM(root), publicFileMode); err != nil {
		return nil, err
	}
	if err := write(interCertFile, certPEM(inter), publicFileMode); err != nil {
		return nil, err
	}
	if !o.NoSSH {
		for _, name := range []string{sshHostKeyFile, sshUserKeyFile} {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return nil, err
			}
			if err := writeKey(name, k); err != nil {
				return nil, err
			}
			pub, err := ssh.NewPublicKey(&k.PublicKey)
			if err != nil {
				return nil, err
			}
			if err := write(name+".pub", ssh.MarshalAuthorizedKey(pub), publicFileMode); err != nil {
				return nil, err
			}
		}
	}
	writeProvisioner := func(pubFile, keyFile string) error {
		pub, jwe, err := jose.GenerateDefaultKeyPair(pw)
		if err != nil {
			return fmt.Errorf("pki init: provisioner key: %w", err)
		}
		pubJSON, err := json.MarshalIndent(pub, "", "  ")
		if err != nil {
			return err
		}
		enc, err := jwe.CompactSerialize()
		if err != nil {
			return err
		}
		if err := write(pubFile, append(pubJSON, '\n'), publicFileMode); err != nil {
			return err
		}
		return write(keyFile, []byte(enc+"\n"), privateFileMode)
	}
	if err := writeProvisioner(provPubFile, provKeyFile); err != nil {
		return nil, err
	}
	if !o.NoSSH {
		if err := writeProvisioner(sshProvPubFile, sshProvKeyFile); err != nil {
			return nil, err
		}
	}

	var c Config
	c.Listen = o.Listen
	c.DNSNames = o.DNSNames
	c.PasswordFile = pwFile
	if rel, err := filepath.Rel(dir, pwFile); err == nil && filepath.Dir(rel) == "." {
		c.PasswordFile = rel
	}
	c.RootCert, c.IntermediateCert, c.IntermediateKey = rootCertFile, interCertFile, interKeyFile
	c.Provisioner.Name, c.Provisioner.PublicKey, c.Provisioner.Key = "rampart", provPubFile, provKeyFile
	if o.StoreDSN != "" {
		c.Store.Type, c.Store.DSN = "postgresql", o.StoreDSN
	}
	c.Leaf.AllowRenewalAfterExpiry = true
	c.Metrics, c.AuditLog = o.Metrics, o.AuditLog
	if !o.NoSSH {
		c.SSH.Enabled, c.SSH.HostKey, c.SSH.UserKey = true, sshHostKeyFile, sshUserKeyFile
		c.SSHUserProvisioner.Name, c.SSHUserProvisioner.PublicKey, c.SSHUserProvisioner.Key = "ssh-users", sshProvPubFile, sshProvKeyFile
	}
	c.dir = dir
	if err := c.setDefaults(); err != nil {
		return nil, fmt.Errorf("pki init: %w", err)
	}
	y, err := yaml.Marshal(&c)
	if err != nil {
		return nil, err
	}
	header := "# Rampart internal CA (pki serve --config " + cfgPath + ").\n# Root fingerprint: " + client.Fingerprint(root) + "\n"
	if err := write(ConfigFile, append([]byte(header), y...), privateFileMode); err != nil {
		return nil, err
	}
	return &InitResult{ConfigPath: cfgPath, Fingerprint: client.Fingerprint(root), Root: root}, nil
}

func priv() atomicfile.Options { return atomicfile.Options{Mode: privateFileMode, UID: -1, GID: -1} }

func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
		pub = signer.Public()
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("pki init: sign %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}
