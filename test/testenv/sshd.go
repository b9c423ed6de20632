package testenv

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// SSHDOptions configure [StartSSHD]. The zero value is a root-login sshd
// on a free loopback port, accepting the keys in AuthorizedKeys.
type SSHDOptions struct {
	// Config lines appended to the generated sshd_config (a later line
	// does not override an earlier one in sshd, so only add settings).
	Config []string
	// HostKeyPEM is the host's private key in PEM (ssh.MarshalPrivateKey
	// or ssh-keygen output); nil generates an ed25519 key.
	HostKeyPEM []byte
	// HostCA, when set, signs a host certificate for the host key with
	// principals HostCertPrincipals (default 127.0.0.1, localhost).
	HostCA             gossh.Signer
	HostCertPrincipals []string
	// TrustedUserCAKeys are CA keys whose user certificates sshd accepts.
	TrustedUserCAKeys []gossh.PublicKey
	// AuthorizedKeys are written to the AuthorizedKeysFile in the temp
	// directory (for every user).
	AuthorizedKeys []gossh.PublicKey
	// Host runs sshd inside that network namespace, listening on
	// ListenAddr (default 0.0.0.0); nil means 127.0.0.1 in the test's own
	// namespace.
	Host       *Host
	ListenAddr string
	// Port is the TCP port; 0 picks a free one.
	Port int
}

// SSHD is a running throwaway OpenSSH server.
type SSHD struct {
	Addr    string          // host:port to dial
	HostKey gossh.PublicKey // the plain host key
	Dir     string          // its temporary directory
	LogPath string          // sshd -E output
	// AuthorizedKeysFile may be appended to while sshd runs.
	AuthorizedKeysFile string
	// Pid is the listening sshd (without Host); the per-connection processes are its
	// children, so their CPU time joins its own once they are reaped.
	Pid int
}

// StartSSHD starts /usr/sbin/sshd -D -e in the foreground with a generated
// config (StrictModes no, UsePAM no, root login by key only, passwords
// and keyboard-interactive off) and stops it when the test ends.
func StartSSHD(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	RequireRoot(t)
	bin := Binary(t, "sshd")
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		Need(t, "cannot create /run/sshd (sshd's privilege separation directory): "+err.Error())
	}
	dir := t.TempDir()
	// sshd reads AuthorizedKeysFile as the user logging in ([SSHUser]):
	// let it traverse to the file.
	os.Chmod(filepath.Dir(dir), 0o711)
	os.Chmod(dir, 0o711)
	s := &SSHD{Dir: dir, LogPath: filepath.Join(dir, "sshd.log"), AuthorizedKeysFile: filepath.Join(dir, "authorized_keys")}

	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	keyPEM := opts.HostKeyPEM
	if keyPEM == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		block, err := gossh.MarshalPrivateKey(priv, "testenv sshd")
		if err != nil {
			t.Fatal(err)
		}
		keyPEM = pem.EncodeToMemory(block)
	}
	signer, err := gossh.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatalf("testenv: SSHDOptions.HostKeyPEM: %v", err)
	}
	if err := os.WriteFile(hostKeyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s.HostKey = signer.PublicKey()

	var ak []byte
	for _, k := range opts.AuthorizedKeys {
		ak = append(ak, gossh.MarshalAuthorizedKey(k)...)
	}
	if err := os.WriteFile(s.AuthorizedKeysFile, ak, 0o644); err != nil {
		t.Fatal(err)
	}
	port := opts.Port
	listen := "127.0.0.1"
	if opts.Host != nil {
		listen = "0.0.0.0"
		if port == 0 {
			port = 22
		}
	}
	if opts.ListenAddr != "" {
		listen = opts.ListenAddr
	}
	if port == 0 {
		port = FreePort(t)
	}
	lines := []string{
		"Port " + strconv.Itoa(port),
		"ListenAddress " + listen,
		"HostKey " + hostKeyPath,
		"PidFile none",
		"AuthorizedKeysFile " + s.AuthorizedKeysFile,
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"Subsystem sftp internal-sftp",
		"LogLevel VERBOSE",
		"MaxStartups 1000:30:2000",
		"MaxSessions 100",
		"UseDNS no",
	}
	if opts.HostCA != nil {
		principals := opts.HostCertPrincipals
		if len(principals) == 0 {
			principals = []string{"127.0.0.1", "localhost"}
		}
		cert := &gossh.Certificate{
			Key: signer.PublicKey(), CertType: gossh.HostCert, KeyId: "testenv-sshd",
			ValidPrincipals: principals,
			ValidAfter:      uint64(time.Now().Add(-time.Hour).Unix()),
			ValidBefore:     uint64(time.Now().Add(24 * time.Hour).Unix()),
		}
		if err := cert.SignCert(rand.Reader, opts.HostCA); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hostKeyPath+"-cert.pub", gossh.MarshalAuthorizedKey(cert), 0o644); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, "HostCertificate "+hostKeyPath+"-cert.pub")
	}
	if len(opts.TrustedUserCAKeys) > 0 {
		var cas []byte
		for _, k := range opts.TrustedUserCAKeys {
			cas = append(cas, gossh.MarshalAuthorizedKey(k)...)
		}
		p := filepath.Join(dir, "trusted_user_ca_keys")
		if err := os.WriteFile(p, cas, 0o644); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, "TrustedUserCAKeys "+p)
	}
	lines = append(lines, opts.Config...)
	conf := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("testenv: sshd -t rejects the config: %v\n%s", err, out)
	}
	var cmd *exec.Cmd
	if opts.Host != nil {
		cmd = opts.Host.Command(bin, "-D", "-e", "-f", conf)
	} else {
		cmd = exec.Command(bin, "-D", "-e", "-f", conf)
	}
	logf, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start sshd: %v", err)
	}
	s.Pid = cmd.Process.Pid
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// The process group holds sshd and its per-connection children.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(s.LogPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("sshd log (%s):\n%s", s.LogPath, b)
		}
	})
	host := listen
	if host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	s.Addr = net.JoinHostPort(host, strconv.Itoa(port))
	ready := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return waitSSHBanner(ctx, s.Addr, done)
	}
	var werr error
	if opts.Host != nil {
		werr = opts.Host.Do(ready)
	} else {
		werr = ready()
	}
	if werr != nil {
		b, _ := os.ReadFile(s.LogPath)
		t.Fatalf("testenv: sshd did not start: %v\n%s", werr, b)
	}
	return s
}

// waitSSHBanner dials addr until an SSH version line comes back.
func waitSSHBanner(ctx context.Context, addr string, exited <-chan struct{}) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4)
			_, rerr := c.Read(buf)
			c.Close()
			if rerr == nil && string(buf) == "SSH-" {
				return nil
			}
			err = rerr
		}
		select {
		case <-exited:
			return os.ErrProcessDone
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SSHUserName is the local account [SSHUser] provides.
const SSHUserName = "rampart-ssh"

// SSHUser returns the name of a local account for logging in to a
// [StartSSHD] server: shell /bin/sh, home /, no password (key logins
// only), created with useradd when missing. Logging in as root works too,
// but root's shell start-up files on a developer machine can take seconds
// and would be measured by every test and benchmark.
func SSHUser(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	if exec.Command("id", "-u", SSHUserName).Run() == nil {
		return SSHUserName
	}
	useradd := Binary(t, "useradd")
	// "*" rather than useradd's locked "!": sshd without PAM refuses
	// locked accounts even for key logins.
	out, err := exec.Command(useradd, "--system", "--no-create-home", "--home-dir", "/", "--shell", "/bin/sh",
		"--password", "*", SSHUserName).CombinedOutput()
	if err != nil && exec.Command("id", "-u", SSHUserName).Run() != nil {
		// Lost a race with a parallel test, or a real failure.
		t.Fatalf("testenv: useradd %s: %v: %s", SSHUserName, err, out)
	}
	return SSHUserName
}
