package bastion_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/test/testenv"
)

// TestOpenSSHUserCertificate: a user with no listed key logs in with an
// OpenSSH user certificate signed (by ssh-keygen) with the trusted CA, then
// the TOTP code; a certificate from another CA is refused.
func TestOpenSSHUserCertificate(t *testing.T) {
	keygen := testenv.Binary(t, "ssh-keygen")
	dir := t.TempDir()
	caPath := filepath.Join(dir, "user_ca")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", caPath).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	caPub, _ := os.ReadFile(caPath + ".pub")
	w := bstNewWorld(t, bstSetup{
		Users: []*bstUser{{Name: "carol", NoKey: true}, {Name: "dave", NoKey: true}},
		Extra: fmt.Sprintf("trusted_user_ca_keys: [%q]\n", strings.TrimSpace(string(caPub))),
	})
	certKey := filepath.Join(dir, "id_carol")
	bstKey(t, certKey)
	sign := func(ca, principal string) {
		out, err := exec.Command(keygen, "-q", "-s", ca, "-I", principal+"@test", "-n", principal, "-V", "-5m:+1h", certKey+".pub").CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -s: %v\n%s", err, out)
		}
	}
	login := func(user string) sshResult {
		return w.ssh(w.totp(user), "-i", certKey, "-o", "CertificateFile="+certKey+"-cert.pub", "-T", user+"@bastion")
	}

	sign(caPath, "carol")
	if r := login("carol"); r.Err != nil || !strings.Contains(r.Out, "-  target") {
		t.Fatalf("certificate login: %v\n%s", r.Err, r.Out)
	}
	w.waitRecord(map[string]any{"type": "auth", "user": "carol", "method": "certificate", "result": "success"})

	// The same certificate does not make its holder dave.
	if r := login("dave"); r.Err == nil {
		t.Fatalf("certificate for carol logged in as dave:\n%s", r.Out)
	}

	// A certificate from an untrusted CA.
	rogue := filepath.Join(dir, "rogue_ca")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, _ := gossh.MarshalPrivateKey(priv, "")
	os.WriteFile(rogue, pemEncode(blk), 0o600)
	sign(rogue, "dave")
	if r := login("dave"); r.Err == nil {
		t.Fatalf("certificate from an untrusted CA accepted:\n%s", r.Out)
	}
	w.waitRecord(map[string]any{"type": "auth", "user": "dave", "method": "certificate", "result": "failure", "reason": "certificate: signed by an untrusted CA"})
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
