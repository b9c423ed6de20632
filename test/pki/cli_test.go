package pki_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/pki/client"
	"github.com/rampart-sec/rampart/test/testenv"
)

var (
	buildOnce sync.Once
	pkiBin    string
	buildErr  error
	buildDir  string
)

// pkiBinary builds cmd/pki once per test binary.
func pkiBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rampart-pki-bin-")
		if buildErr != nil {
			return
		}
		pkiBin = filepath.Join(buildDir, "pki")
		cmd := exec.Command("go", "build", "-o", pkiBin, "./cmd/pki")
		cmd.Dir = testenv.ModuleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/pki: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return pkiBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestStepCLI: the smallstep step CLI, an independent client, obtains and
// renews certificates from the CA, on both stores.
func TestStepCLI(t *testing.T) {
	step := testenv.Binary(t, "step")
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			c := newCA(t, st.dsn(t), "")
			work := t.TempDir()
			env := []string{"STEPPATH=" + filepath.Join(work, "step"), "HOME=" + work}
			root := filepath.Join(c.dir, "root_ca.crt")
			crt, key := filepath.Join(work, "web.crt"), filepath.Join(work, "web.key")
			tok := c.token("web.rampart.test", []string{"web.rampart.test"}, "agent")
			run(t, env, step, "ca", "certificate", "web.rampart.test", crt, key,
				"--token", tok, "--ca-url", c.url, "--root", root, "--not-after", "10m")
			first := certOf(t, crt)
			if !slices.Equal(client.Roles(first), []string{"agent"}) {
				t.Errorf("step certificate roles %v, want [agent]", client.Roles(first))
			}
			run(t, env, step, "ca", "renew", crt, key, "--force", "--ca-url", c.url, "--root", root)
			second := certOf(t, crt)
			if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
				t.Error("step ca renew kept the serial")
			}
			// step refuses a replayed token too, because the CA does.
			cmd := exec.Command(step, "ca", "certificate", "web.rampart.test", crt+"2", key+"2",
				"--token", tok, "--ca-url", c.url, "--root", root)
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "token already used") {
				t.Errorf("replay through step: err %v, output %s", err, out)
			}
		})
	}
}

func certOf(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode([]byte(readFile(t, path)))
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testSSHPub(t testing.TB) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(pub))
}

// TestCommand drives the pki binary: init, serve, token, bootstrap,
// renew --exec, ssh-sign, revoke.
func TestCommand(t *testing.T) {
	bin := pkiBinary(t)
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	port := testenv.FreePort(t)
	out := run(t, nil, bin, "init", "--dir", caDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	fp := ""
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "root fingerprint: "); ok {
			fp = v
		}
	}
	if len(fp) != 64 {
		t.Fatalf("init printed no fingerprint:\n%s", out)
	}
	cfg := filepath.Join(caDir, "pki.yaml")
	for _, f := range []string{"root_ca.key", "intermediate_ca.key", "ssh_user_ca_key", "ssh_host_ca_key", "provisioner.key.jwe", "password.txt"} {
		fi, err := os.Stat(filepath.Join(caDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
		if strings.HasSuffix(f, "key") && !strings.Contains(readFile(t, filepath.Join(caDir, f)), "ENCRYPTED PRIVATE KEY") {
			t.Errorf("%s is not encrypted", f)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	serve := exec.CommandContext(ctx, bin, "serve", "--config", cfg)
	stderr, _ := serve.StderrPipe()
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); serve.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "pki: serving") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("pki serve did not start")
	}
	caURL := fmt.Sprintf("https://localhost:%d", port)

	tok := strings.TrimSpace(run(t, nil, bin, "token", "agent1", "--config", cfg, "--san", "localhost", "--san", "127.0.0.1", "--role", "agent", "--role", "reporter"))
	host := filepath.Join(dir, "host")
	run(t, nil, bin, "bootstrap", "--ca-url", caURL, "--fingerprint", fp, "--token", tok, "--out", host, "--lifetime", "5m")
	first := certOf(t, filepath.Join(host, client.CertFile))

	marker := filepath.Join(dir, "hook")
	run(t, nil, bin, "renew", "--dir", host, "--force", "--exec", "touch "+marker)
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("reload hook did not run after renewal")
	}
	second := certOf(t, filepath.Join(host, client.CertFile))
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renew kept the serial")
	}
	if got := run(t, nil, bin, "renew", "--dir", host); !strings.Contains(got, "not due") {
		t.Errorf("renew of a fresh certificate: %q, want not due", got)
	}

	cmd := exec.Command(bin, "bootstrap", "--ca-url", caURL, "--fingerprint", fp, "--token", tok, "--out", filepath.Join(dir, "again"))
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "token already used") {
		t.Errorf("replayed token: err %v, output %s", err, msg)
	}

	pub := filepath.Join(dir, "id_ecdsa.pub")
	if err := os.WriteFile(pub, []byte(testSSHPub(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, nil, bin, "ssh-sign", "--config", cfg, "--user", "alice", "--key", pub, "--ttl", "5m")
	if !strings.Contains(readFile(t, filepath.Join(dir, "id_ecdsa-cert.pub")), "-cert-v01@openssh.com") {
		t.Error("ssh-sign wrote no certificate")
	}

	run(t, nil, bin, "revoke", "--config", cfg, second.SerialNumber.String())
	cmd = exec.Command(bin, "renew", "--dir", host, "--force")
	msg, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "revoked") {
		t.Errorf("renew after revoke: err %v, output %s", err, msg)
	}
}
