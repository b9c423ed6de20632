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
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/mfa"
	"github.com/rampart-sec/rampart/test/testenv"
)

// TestRecordedSessionThroughServe runs the real `bastion serve` binary
// with recording on, and OpenSSH asks for "ssh alice@bastion rec id -un":
// key + TOTP at the bastion, then the recording proxy logs in to the
// target sshd with a short-lived certificate, and the session's events
// land in the same hash-chained audit log.
func TestRecordedSessionThroughServe(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	bin := testenv.BuildCommand(t, "bastion")
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, _ := gossh.NewSignerFromKey(caPriv)
	blk, _ := gossh.MarshalPrivateKey(caPriv, "")
	caFile := filepath.Join(dir, "target-user-ca")
	os.WriteFile(caFile, pem.EncodeToMemory(blk), 0o600)
	targetUser := testenv.SSHUser(t)
	target := testenv.StartSSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []gossh.PublicKey{ca.PublicKey()}})

	userKey := bstKey(t, filepath.Join(dir, "id_user"))
	port := testenv.FreePort(t)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
state_dir: state
recording: {dir: recordings, user_ca_key: %s, cert_ttl: 2m}
targets:
  - name: rec
    addr: "%s"
    user: %s
    modes: [record]
    host_keys: [%q]
users:
  alice: {keys: [%[6]q], targets: [rec]}
  bob: {keys: [%[6]q], targets: [rec]}
`, port, caFile, target.Addr, targetUser, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(target.HostKey))),
		strings.TrimSpace(string(gossh.MarshalAuthorizedKey(userKey.PublicKey()))))
	cfgPath := filepath.Join(dir, "bastion.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	store, _ := mfa.NewTOTPStore(filepath.Join(dir, "state", "totp"), nil)
	secret := bstSecret()
	store.SetSecret("alice", secret)
	bobSecret := bstSecret()
	store.SetSecret("bob", bobSecret)

	srv := exec.Command(bin, "serve", "--config", cfgPath)
	logf, _ := os.Create(filepath.Join(dir, "serve.log"))
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			t.Logf("bastion serve log:\n%s", b)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testenv.WaitTCP(t, "bastion serve", addr, 10*time.Second)

	code, err := exec.Command(testenv.Binary(t, "oathtool"), "--totp", "-b", secret).Output()
	if err != nil {
		t.Fatal(err)
	}
	ans := filepath.Join(dir, "answer")
	os.WriteFile(ans, code, 0o600)
	askpass := filepath.Join(dir, "askpass")
	os.WriteFile(askpass, []byte("#!/bin/sh\ncat \"$BST_ANSWER\"\n"), 0o755)
	cmd := exec.Command(testenv.Binary(t, "ssh"), "-F", "none", "-p", fmt.Sprint(port), "-i", filepath.Join(dir, "id_user"),
		"-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=no",
		"-o", "LogLevel=ERROR", "alice@127.0.0.1", "rec", "id", "-un")
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "BST_ANSWER="+ans)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), targetUser) {
		t.Fatalf("recorded session: %v\n%s", err, out)
	}
	casts, _ := filepath.Glob(filepath.Join(dir, "recordings", "*"))
	if len(casts) == 0 {
		t.Fatal("no recording written")
	}
	auditPath := filepath.Join(dir, "state", "audit.jsonl")
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(auditPath)
		if strings.Contains(string(data), `"method":"recorded.end"`) {
			if !strings.Contains(string(data), `"type":"session","user":"alice"`) {
				t.Errorf("session events lack the user:\n%s", data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recorded.end event in the audit log:\n%s", data)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// sftp to user%target goes through the recorder's sftp subsystem.
	code, err = exec.Command(testenv.Binary(t, "oathtool"), "--totp", "-b", bobSecret).Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(ans, code, 0o600)
	batch := filepath.Join(dir, "batch")
	os.WriteFile(batch, []byte("pwd\nls /\n"), 0o644)
	sftp := exec.Command(testenv.Binary(t, "sftp"), "-F", "none", "-P", fmt.Sprint(port), "-i", filepath.Join(dir, "id_user"),
		"-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=no",
		"-o", "LogLevel=ERROR", "-b", batch, "bob%rec@127.0.0.1")
	sftp.Env = cmd.Env
	if out, err := sftp.CombinedOutput(); err != nil || !strings.Contains(string(out), "Remote working directory") {
		t.Fatalf("sftp bob%%rec: %v\n%s", err, out)
	}

	if out, err := exec.Command(bin, "audit", "verify", "--file", auditPath).CombinedOutput(); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}
