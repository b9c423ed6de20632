package pki_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/pki/client"
	"github.com/rampart-sec/rampart/test/testenv"
)

func readSSHCert(t *testing.T, path string) *ssh.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c, ok := k.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%s: not a certificate", path)
	}
	return c
}

// TestSSHPOPRenew: an SSH host certificate from `pki ssh-sign --host` is
// renewed by the smallstep step CLI (`step ssh renew`, the SSHPOP
// provisioner of pki serve) and then by `pki renew --ssh-host-key` (not
// due without --force; the hook runs after the write). Each renewal keeps
// key, principals and lifetime, gets a new serial and is signed by the
// CA's host key; OpenSSH's sshd serves the renewed certificate and ssh
// with an @cert-authority known_hosts line accepts it.
func TestSSHPOPRenew(t *testing.T) {
	step := testenv.Binary(t, "step")
	keygen := testenv.Binary(t, "ssh-keygen")
	c := startCLICA(t, nil)
	if !strings.Contains(readFile(t, c.cfg), "sshpop:\n    enabled: true") {
		t.Fatalf("pki init did not enable sshpop:\n%s", readFile(t, c.cfg))
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "ssh_host_ed25519_key")
	run(t, nil, keygen, "-q", "-t", "ed25519", "-N", "", "-f", key)
	run(t, nil, c.bin, "ssh-sign", "--config", c.cfg, "--host", "web1.internal", "--host", "127.0.0.1", "--key", key+".pub", "--ttl", "30m")
	certFile := key + "-cert.pub"
	first := readSSHCert(t, certFile)
	hostCA, _, _, _, err := ssh.ParseAuthorizedKey([]byte(readFile(t, filepath.Join(c.dir, "ssh_host_ca_key.pub"))))
	if err != nil {
		t.Fatal(err)
	}
	check := func(who string, prev, next *ssh.Certificate) {
		t.Helper()
		if next.Serial == prev.Serial || !bytes.Equal(next.Key.Marshal(), prev.Key.Marshal()) ||
			!slices.Equal(next.ValidPrincipals, prev.ValidPrincipals) || next.CertType != ssh.HostCert ||
			!bytes.Equal(next.SignatureKey.Marshal(), hostCA.Marshal()) {
			t.Fatalf("%s: renewed %+v\nfrom %+v", who, next, prev)
		}
		if got, want := next.ValidBefore-next.ValidAfter, prev.ValidBefore-prev.ValidAfter; got < want-120 || got > want+120 {
			t.Errorf("%s: lifetime %ds, want %ds", who, got, want)
		}
		if time.Unix(int64(next.ValidBefore), 0).Before(time.Unix(int64(prev.ValidBefore), 0)) {
			t.Errorf("%s: renewed certificate ends before the old one", who)
		}
	}

	stepPath := t.TempDir()
	root := filepath.Join(c.dir, "root_ca.crt")
	time.Sleep(1100 * time.Millisecond) // a later ValidAfter
	out, err := runOut([]string{"STEPPATH=" + stepPath}, step, "ssh", "renew", certFile, key, "--ca-url", c.url, "--root", root, "--force")
	if err != nil {
		t.Fatalf("step ssh renew: %v\n%s\npki serve:\n%s", err, out, c.serve.out.String())
	}
	second := readSSHCert(t, certFile)
	check("step ssh renew", first, second)

	// pki renew --ssh-host-key: not due yet, then forced with a hook.
	out = run(t, nil, c.bin, "renew", "--ssh-host-key", key, "--ca-url", c.url, "--root", root)
	if !strings.Contains(out, "not due yet") {
		t.Fatalf("pki renew --ssh-host-key on a fresh certificate: %s", out)
	}
	marker := filepath.Join(dir, "hook-saw")
	run(t, nil, c.bin, "renew", "--ssh-host-key", key, "--ca-url", c.url, "--root", root, "--force",
		"--exec", "ssh-keygen -L -f \"$PKI_SSH_CERT\" | grep Serial > "+marker)
	third := readSSHCert(t, certFile)
	check("pki renew --ssh-host-key", second, third)
	if saw := readFile(t, marker); !strings.Contains(saw, "Serial: ") || strings.Contains(saw, " "+itoa(second.Serial)) {
		t.Errorf("hook saw %q, want the new serial %d", saw, third.Serial)
	}

	// A key that is not the certificate's is refused before anything is sent.
	other := filepath.Join(dir, "other")
	run(t, nil, keygen, "-q", "-t", "ed25519", "-N", "", "-f", other)
	if out, err := runOut(nil, c.bin, "renew", "--ssh-host-key", other, "--ssh-host-cert", certFile, "--ca-url", c.url, "--root", root, "--force"); err == nil ||
		!strings.Contains(out, "does not match") {
		t.Errorf("renewal with the wrong key: %v\n%s", err, out)
	}

	// OpenSSH accepts the renewed certificate.
	sshd := testenv.Binary(t, "sshd")
	sshBin := testenv.Binary(t, "ssh")
	port := testenv.FreePort(t)
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte("Port "+itoa(uint64(port))+"\nListenAddress 127.0.0.1\nHostKey "+key+"\nHostCertificate "+certFile+
		"\nPidFile none\nUsePAM no\nAuthenticationMethods publickey\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	var sdOut syncBuffer
	sd.Stdout, sd.Stderr = &sdOut, &sdOut
	if err := sd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sd.Process.Kill(); _ = sd.Wait() })
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte("@cert-authority * "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostCA)))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ = runOut(nil, sshBin, "-vv", "-p", itoa(uint64(port)), "-o", "UserKnownHostsFile="+kh, "-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-i", "/dev/null", "nobody@127.0.0.1", "true")
		if strings.Contains(out, "Server host certificate:") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, "is known and matches the ED25519-CERT host certificate") ||
		!strings.Contains(out, "serial "+itoa(third.Serial)) {
		t.Fatalf("ssh did not accept the renewed host certificate (serial %d):\n%s\nsshd:\n%s", third.Serial, out, sdOut.String())
	}
}

func runOut(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func itoa(n uint64) string {
	var b []byte
	if n == 0 {
		return "0"
	}
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestStepCertificateWithoutToken: with provisioner.publish_encrypted_key
// the step CLI mints its own tokens from the provisioner password, as
// against step-ca: `step ssh certificate` (user) and `step ca certificate`
// work with --provisioner-password-file and no token. Without it (the
// default) step cannot, and says so.
func TestStepCertificateWithoutToken(t *testing.T) {
	step := testenv.Binary(t, "step")
	c := startCLICA(t, func(y string) string {
		if !strings.Contains(y, "publish_encrypted_key: false") {
			t.Fatalf("pki init wrote no provisioner.publish_encrypted_key:\n%s", y)
		}
		return strings.Replace(y, "publish_encrypted_key: false", "publish_encrypted_key: true", 1)
	})
	dir := t.TempDir()
	env := []string{"STEPPATH=" + t.TempDir()}
	root := filepath.Join(c.dir, "root_ca.crt")
	pw := filepath.Join(c.dir, "password.txt")
	key := filepath.Join(dir, "id_alice")
	out, err := runOut(env, step, "ssh", "certificate", "alice", key, "--provisioner", "rampart", "--provisioner-password-file", pw,
		"--ca-url", c.url, "--root", root, "--no-password", "--insecure", "--no-agent", "--force")
	if err != nil {
		t.Fatalf("step ssh certificate: %v\n%s\npki serve:\n%s", err, out, c.serve.out.String())
	}
	cert := readSSHCert(t, key+"-cert.pub")
	if cert.CertType != ssh.UserCert || !slices.Contains(cert.ValidPrincipals, "alice") {
		t.Errorf("step ssh certificate: %+v", cert)
	}
	crt, k := filepath.Join(dir, "web.crt"), filepath.Join(dir, "web.key")
	out, err = runOut(env, step, "ca", "certificate", "web1.internal", crt, k, "--provisioner", "rampart", "--provisioner-password-file", pw,
		"--ca-url", c.url, "--root", root, "--force")
	if err != nil {
		t.Fatalf("step ca certificate: %v\n%s", err, out)
	}

	plain := startCLICA(t, nil)
	out, err = runOut(env, step, "ssh", "certificate", "bob", filepath.Join(dir, "id_bob"), "--provisioner", "rampart",
		"--provisioner-password-file", filepath.Join(plain.dir, "password.txt"), "--ca-url", plain.url,
		"--root", filepath.Join(plain.dir, "root_ca.crt"), "--no-password", "--insecure", "--no-agent", "--force")
	if err == nil {
		t.Fatalf("step ssh certificate without a token against a CA that does not publish its key:\n%s", out)
	}
}

// TestSSHPOPRenewNamePolicy: step-ca renews SSH host certificates without
// consulting any name policy; pki refuses (403) the renewal of one whose
// principals a narrowed policy no longer allows, and the file stays.
func TestSSHPOPRenewNamePolicy(t *testing.T) {
	c := newCA(t, "", "")
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub, _ := ssh.NewPublicKey(priv.Public())
	cert, err := c.client().SignSSHHost(ctx, c.prov, pub, []string{"h1.rampart.test"}, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &client.SSHHostRenewer{KeyFile: keyFile, Client: c.client()}
	if renewed, err := r.RenewIfDue(ctx, true); err != nil || !renewed {
		t.Fatalf("renewal within the policy: %v %v", renewed, err)
	}
	before := readFile(t, keyFile+"-cert.pub")
	c.cfg.Policy.DNS = []string{"*.other.test"}
	c.restart()
	_, err = r.RenewIfDue(ctx, true)
	var apiErr *client.APIError
	if !errorsAs(err, &apiErr) || apiErr.Status != 403 || !strings.Contains(err.Error(), `SSH host principal "h1.rampart.test" is not allowed`) {
		t.Fatalf("renewal outside the narrowed policy: %v", err)
	}
	if readFile(t, keyFile+"-cert.pub") != before {
		t.Error("refused renewal changed the certificate file")
	}
	if !c.waitLog("pki: request refused") {
		t.Errorf("no refusal line in the CA's log:\n%s", c.logs.String())
	}
}

// TestSSHPOPRenewDaemon: SSHHostRenewer.Run (pki renew --ssh-host-key
// --daemon) renews once the certificate is two thirds through its life,
// then waits for the new one's turn instead of renewing again. The clock
// is moved 25 minutes ahead of a 30-minute certificate until it has been
// replaced.
func TestSSHPOPRenewDaemon(t *testing.T) {
	c := newCA(t, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub, _ := ssh.NewPublicKey(priv.Public())
	cert, err := c.client().SignSSHHost(ctx, c.prov, pub, []string{"d1.rampart.test"}, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	blk, _ := ssh.MarshalPrivateKey(priv, "")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	serialNow := func() uint64 {
		b, err := os.ReadFile(keyFile + "-cert.pub")
		if err != nil {
			return 0
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			return 0
		}
		return k.(*ssh.Certificate).Serial
	}
	clock := func() time.Time {
		if serialNow() == cert.Serial {
			return time.Now().Add(25 * time.Minute)
		}
		return time.Now()
	}
	marker := filepath.Join(dir, "hooks")
	r := &client.SSHHostRenewer{KeyFile: keyFile, Client: c.client(), Now: clock, Hook: "echo ran >> " + marker}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for serialNow() == cert.Serial && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if serialNow() == cert.Serial {
		t.Fatal("the daemon did not renew a certificate past two thirds of its life")
	}
	time.Sleep(2 * time.Second) // a renewal loop would show here
	renewed := serialNow()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(readFile(t, marker), "ran"); got != 1 || serialNow() != renewed {
		t.Errorf("hook ran %d times, want 1 (serial %d then %d)", got, renewed, serialNow())
	}
}
