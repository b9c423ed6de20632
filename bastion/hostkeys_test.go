package bastion_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion"
)

func TestHostKeysGeneratedOnceAndCertified(t *testing.T) {
	dir := t.TempDir()
	first, err := bastion.LoadHostKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].PublicKey().Type() != gossh.KeyAlgoED25519 || first[1].PublicKey().Type() != gossh.KeyAlgoECDSA256 {
		t.Fatalf("host keys: %v", first)
	}
	for _, n := range []string{bastion.HostKeyEd25519, bastion.HostKeyECDSA} {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", n, st.Mode(), err)
		}
	}
	again, _ := bastion.LoadHostKeys(dir)
	if string(again[0].PublicKey().Marshal()) != string(first[0].PublicKey().Marshal()) {
		t.Fatal("host key changed between starts")
	}

	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, _ := gossh.NewSignerFromKey(caPriv)
	cert := &gossh.Certificate{Key: first[0].PublicKey(), CertType: gossh.HostCert, ValidPrincipals: []string{"bastion.example.org"},
		ValidBefore: uint64(time.Now().Add(time.Hour).Unix())}
	cert.SignCert(rand.Reader, ca)
	certFile := filepath.Join(dir, "cert.pub")
	os.WriteFile(certFile, gossh.MarshalAuthorizedKey(cert), 0o644)
	signers, err := bastion.WithHostCertificates(first, []string{certFile})
	if err != nil {
		t.Fatal(err)
	}
	if len(signers) != 3 || signers[0].PublicKey().Type() != gossh.CertAlgoED25519v01 {
		t.Fatalf("certificate signer not first: %d signers, first %s", len(signers), signers[0].PublicKey().Type())
	}

	// A certificate for some other key is refused.
	other, _ := bastion.LoadHostKeys(t.TempDir())
	if _, err := bastion.WithHostCertificates(other, []string{certFile}); err == nil {
		t.Fatal("certificate for another key accepted")
	}
}
