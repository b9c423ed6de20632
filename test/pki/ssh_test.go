package pki_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/test/testenv"
)

// TestSSHUserCertificateWithOpenSSH: OpenSSH's sshd trusts the CA's user
// key (TrustedUserCAKeys, as in examples/pki/ssh/sshd_config) and OpenSSH's
// ssh logs in with a five-minute certificate from SignSSHUser; a key
// without a certificate is refused.
func TestSSHUserCertificateWithOpenSSH(t *testing.T) {
	testenv.RequireRoot(t)
	sshBin := testenv.Binary(t, "ssh")
	c := newCA(t, "", "")
	caPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(readFile(t, filepath.Join(c.dir, "ssh_user_ca_key.pub"))))
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.StartSSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{caPub}})

	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	login := func(withCert bool) ([]byte, error) {
		args := []string{"-F", "/dev/null", "-i", keyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10"}
		if withCert {
			args = append(args, "-o", "CertificateFile="+keyPath+"-cert.pub")
		}
		host, port, _ := strings.Cut(sshd.Addr, ":")
		args = append(args, "-p", port, "root@"+host, "echo", "certificate-login-ok")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, sshBin, args...).CombinedOutput()
	}
	if out, err := login(false); err == nil {
		t.Fatalf("login without a certificate succeeded: %s", out)
	}
	cert, err := c.client().SignSSHUser(context.Background(), c.prov, sshPub, "root", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := login(true)
	if err != nil || !strings.Contains(string(out), "certificate-login-ok") {
		t.Fatalf("login with certificate: %v\n%s\nsshd log:\n%s", err, out, readFile(t, sshd.LogPath))
	}
}
