package bastion_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/bastion/mfa"
	"github.com/rampart-sec/rampart/test/testenv"
)

// Through the real `bastion serve`: key + TOTP (oathtool, through
// SSH_ASKPASS), then "ssh alice@bastion target CMD" runs CMD on the target
// through the recording proxy; the recording's SHA-256 lands in the
// bastion's hash-chained audit log, and `bastion sessions` lists it.
func TestRecordedThroughBastion(t *testing.T) {
	testenv.RequireRoot(t)
	oathtool := testenv.Binary(t, "oathtool")
	ssh := testenv.Binary(t, "ssh")
	keys, proxyCfg := recNewKeysWithCA(t)
	sshd := recStartSSHD(t, keys.userCA, keys.hostCA)
	dir := t.TempDir()
	bin := testenv.BuildCommand(t, "bastion")
	if err := os.WriteFile(filepath.Join(dir, "user_ca"), []byte(proxyCfg.UserCAKey), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	cfgPath := filepath.Join(dir, "bastion.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
state_dir: state
login_grace_time: 60s
brute_force: {source_threshold: 10000, user_threshold: 10000, backoff_base: 5ms, backoff_max: 10ms, report_threshold: -1}
recording:
  dir: recordings
  user_ca_key: user_ca
  cert_ttl: 2m
targets:
  - name: target
    addr: %s
    user: %s
    modes: [record]
    host_ca: %q
users:
  alice:
    keys: [%q]
    targets: [target]
`, port, sshd.Addr, testenv.SSHUser(t), strings.TrimSpace(proxyCfg.HostCA), strings.TrimSpace(proxyCfg.ClientPub))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := bastion.LoadConfig(cfgPath)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, cfg)
	}
	store, err := mfa.NewTOTPStore(c.Path(c.TOTP.SecretDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	if err := store.SetSecret("alice", secret); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, bin, "serve", "--config", cfgPath)
	logPath := filepath.Join(dir, "serve.log")
	logf, _ := os.Create(logPath)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		srv.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("bastion serve:\n%s", recTail(string(b), 3000))
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testenv.WaitTCP(t, "bastion serve", addr, 30*time.Second)

	askpass := filepath.Join(dir, "askpass")
	os.WriteFile(askpass, []byte("#!/bin/sh\nexec "+oathtool+" --totp -b "+secret+"\n"), 0o755)
	known := filepath.Join(dir, "known_hosts")
	run := exec.Command(ssh, "-F", "/dev/null", "-p", fmt.Sprint(port), "-i", keys.clientKey, "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile="+known, "-o", "LogLevel=ERROR",
		"-o", "PreferredAuthentications=publickey,keyboard-interactive", "-o", "NumberOfPasswordPrompts=1",
		"alice@127.0.0.1", "target", "echo through-the-bastion-$((40+2))")
	run.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "SSH_AUTH_SOCK=")
	out, err := run.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "through-the-bastion-42") {
		t.Fatalf("ssh through the bastion: %v\n%s", err, out)
	}

	recDir := c.Path(c.Recording.Dir)
	casts := recCasts(t, recDir)
	if len(casts) != 1 {
		t.Fatalf("recordings in %s: %v", recDir, casts)
	}
	sum := recSHA256(t, casts[0])
	auditPath := c.Path(c.Audit.File)
	recWaitFor(t, "the recording's SHA-256 in the bastion's audit log", 10*time.Second, func() bool {
		b, _ := os.ReadFile(auditPath)
		return strings.Contains(string(b), sum) && strings.Contains(string(b), "recorded.end")
	})
	if out, err := exec.Command(bin, "audit", "verify", "--config", cfgPath).CombinedOutput(); err != nil {
		t.Errorf("bastion audit verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "sessions", "--config", cfgPath).CombinedOutput(); err != nil || !strings.Contains(string(out), "alice") || !strings.Contains(string(out), "ended") {
		t.Errorf("bastion sessions: %v\n%s", err, out)
	}
}
