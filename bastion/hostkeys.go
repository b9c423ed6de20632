package bastion

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// Host key file names inside host_key_dir, as OpenSSH names them.
const (
	HostKeyEd25519 = "ssh_host_ed25519_key"
	HostKeyECDSA   = "ssh_host_ecdsa_key"
)

// LoadHostKeys loads the ed25519 and ECDSA P-256 host keys from dir,
// generating (0600) whichever is missing, so the first start needs no
// setup. ECDSA is there for older phone clients without ed25519.
func LoadHostKeys(dir string) ([]gossh.Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bastion: host key directory: %w", err)
	}
	var out []gossh.Signer
	for _, name := range []string{HostKeyEd25519, HostKeyECDSA} {
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			data, err = generateHostKey(p, name)
		}
		if err != nil {
			return nil, fmt.Errorf("bastion: host key %s: %w", p, err)
		}
		s, err := gossh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("bastion: host key %s: %w", p, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func generateHostKey(path, name string) ([]byte, error) {
	var key any
	var err error
	if name == HostKeyEd25519 {
		_, key, err = ed25519.GenerateKey(rand.Reader)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, err
	}
	block, err := gossh.MarshalPrivateKey(key, "rampart bastion host key")
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(block)
	if err := atomicfile.WriteFile(path, data, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return nil, err
	}
	signer, err := gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, err
	}
	pub := gossh.MarshalAuthorizedKey(signer.PublicKey())
	if err := atomicfile.WriteFile(path+".pub", pub, atomicfile.Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
		return nil, err
	}
	return data, nil
}

// WithHostCertificates replaces each signer whose key has a certificate in
// certFiles by a certificate signer; clients that trust the host CA
// (@cert-authority in known_hosts) then need no fingerprint.
func WithHostCertificates(signers []gossh.Signer, certFiles []string) ([]gossh.Signer, error) {
	out := append([]gossh.Signer(nil), signers...)
	for _, f := range certFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("bastion: host certificate: %w", err)
		}
		pk, err := ParseAuthorizedKey(string(data))
		if err != nil {
			return nil, fmt.Errorf("bastion: host certificate %s: %w", f, err)
		}
		cert, ok := pk.(*gossh.Certificate)
		if !ok || cert.CertType != gossh.HostCert {
			return nil, fmt.Errorf("bastion: %s is not an SSH host certificate", f)
		}
		found := false
		for i, s := range out {
			if keysEqual(s.PublicKey(), cert.Key) {
				cs, err := gossh.NewCertSigner(cert, s)
				if err != nil {
					return nil, fmt.Errorf("bastion: host certificate %s: %w", f, err)
				}
				// Offer the certificate first, the plain key after it.
				out = append([]gossh.Signer{cs}, out...)
				_ = i
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("bastion: host certificate %s certifies none of the host keys", f)
		}
	}
	return out, nil
}

// SSHFP returns the RFC 4255/6594 SSHFP records (SHA-1 and SHA-256) for
// the given host keys, one per line, for host.
func SSHFP(host string, keys []gossh.PublicKey) (string, error) {
	var b strings.Builder
	if !strings.HasSuffix(host, ".") {
		host += "."
	}
	for _, k := range keys {
		if c, ok := k.(*gossh.Certificate); ok {
			k = c.Key
		}
		var algo int
		switch k.Type() {
		case gossh.KeyAlgoRSA:
			algo = 1
		case gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521:
			algo = 3
		case gossh.KeyAlgoED25519:
			algo = 4
		default:
			return "", fmt.Errorf("bastion: no SSHFP algorithm number for %s", k.Type())
		}
		s1 := sha1.Sum(k.Marshal())
		s2 := sha256.Sum256(k.Marshal())
		fmt.Fprintf(&b, "%s IN SSHFP %d 1 %s\n", host, algo, hex.EncodeToString(s1[:]))
		fmt.Fprintf(&b, "%s IN SSHFP %d 2 %s\n", host, algo, hex.EncodeToString(s2[:]))
	}
	return b.String(), nil
}

// ReadHostKeys returns the public halves of the host keys in dir without
// creating any (unlike [LoadHostKeys]): SSHFP records for keys no running
// bastion presents would be wrong in DNS. A missing key file is skipped;
// no key at all is an error.
func ReadHostKeys(dir string) ([]gossh.PublicKey, error) {
	var keys []gossh.PublicKey
	for _, name := range []string{HostKeyEd25519, HostKeyECDSA} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s, err := gossh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", filepath.Join(dir, name), err)
		}
		keys = append(keys, s.PublicKey())
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no host keys in %s: bastion serve generates them at its first start", dir)
	}
	return keys, nil
}
