package bastion_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/bastion/audit"
	"github.com/rampart-sec/rampart/bastion/mfa"
	"github.com/rampart-sec/rampart/test/testenv"
)

// bstUser is one bastion user in a test world.
type bstUser struct {
	Name    string
	Factor  string   // totp (default), duo, either
	Targets []string // allowed targets
	NoKey   bool     // certificate only
	Secret  string   // TOTP secret, filled in
}

type bstSetup struct {
	Users   []*bstUser
	Targets string // YAML for the targets: list
	Extra   string // more top-level YAML
	// Process runs the real "bastion serve" binary instead of a server
	// in this process (benchmarks: its CPU and memory are then its own,
	// with the settings cmd/bastion makes).
	Process bool
	// JumpHost starts a second sshd, "jumphost" in the ssh config: the
	// reference jump host for benchmarks, whose own CPU time is then
	// measurable apart from the target's.
	JumpHost bool
	// BruteForce replaces the brute_force: block (default: thresholds
	// no test reaches).
	BruteForce string
}

// bstWorld is a bastion (in this process) in front of a real sshd, and
// an OpenSSH client configuration to reach both.
type bstWorld struct {
	t          testing.TB
	Dir        string
	Addr       string // bastion host:port
	Target     *testenv.SSHD
	JumpHost   *testenv.SSHD // with bstSetup.JumpHost
	TargetUser string        // login on the target
	KeyPath    string        // the users' private key (also authorized on the target)
	Key        gossh.Signer
	SSHConfig  string
	AuditPath  string
	Server     *bastion.Server // nil with bstSetup.Process
	Pid        int             // the bastion's process with bstSetup.Process
	users      map[string]*bstUser
}

func bstKey(t testing.TB, path string) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", gossh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func bstSecret() string {
	b := make([]byte, 20)
	rand.Read(b)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

// bstNewWorld starts sshd and a bastion with the given users. target is
// the sshd, allowed by name ("target") unless a user lists otherwise.
func bstNewWorld(t testing.TB, setup bstSetup) *bstWorld {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Binary(t, "ssh")
	testenv.Binary(t, "oathtool")
	dir := t.TempDir()
	w := &bstWorld{t: t, Dir: dir, KeyPath: filepath.Join(dir, "id_user"), users: map[string]*bstUser{}}
	w.Key = bstKey(t, w.KeyPath)
	w.TargetUser = testenv.SSHUser(t)
	w.Target = testenv.StartSSHD(t, testenv.SSHDOptions{AuthorizedKeys: []gossh.PublicKey{w.Key.PublicKey()}})
	if setup.JumpHost {
		w.JumpHost = testenv.StartSSHD(t, testenv.SSHDOptions{AuthorizedKeys: []gossh.PublicKey{w.Key.PublicKey()}})
	}

	// {{target}} in setup.Targets is the sshd's address.
	targets := strings.ReplaceAll(setup.Targets, "{{target}}", w.Target.Addr)
	if targets == "" {
		targets = fmt.Sprintf("  - name: target\n    addr: %s\n", w.Target.Addr)
	}
	var users strings.Builder
	for _, u := range setup.Users {
		w.users[u.Name] = u
		fmt.Fprintf(&users, "  %s:\n", u.Name)
		if !u.NoKey {
			fmt.Fprintf(&users, "    keys: [%q]\n", strings.TrimSpace(string(gossh.MarshalAuthorizedKey(w.Key.PublicKey()))))
		}
		if u.Factor != "" {
			fmt.Fprintf(&users, "    second_factor: %s\n", u.Factor)
		}
		ts := u.Targets
		if ts == nil {
			ts = []string{"target"}
		}
		fmt.Fprintf(&users, "    targets: [%s]\n", quoteAll(ts))
	}
	w.AuditPath = filepath.Join(dir, "state", "audit.jsonl")
	listen := ""
	if setup.Process {
		w.Addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		listen = "listen: " + w.Addr
	}
	bruteForce := setup.BruteForce
	if bruteForce == "" {
		bruteForce = "brute_force:\n  source_threshold: 10000\n  user_threshold: 10000\n  backoff_base: 5ms\n  backoff_max: 10ms\n  report_threshold: -1"
	}
	cfg := fmt.Sprintf(`# test bastion
state_dir: state
users_dir: users.d
login_grace_time: 60s
%s
%s
targets:
%s
users:
%s
%s
`, listen, bruteForce, targets, users.String(), setup.Extra)
	cfgPath := filepath.Join(dir, "bastion.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := bastion.LoadConfig(cfgPath)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", cfg, err)
	}
	store, err := mfa.NewTOTPStore(c.Path(c.TOTP.SecretDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range setup.Users {
		if u.Factor == "" || u.Factor == "totp" || u.Factor == "either" {
			u.Secret = bstSecret()
			if err := store.SetSecret(u.Name, u.Secret); err != nil {
				t.Fatal(err)
			}
		}
	}
	if setup.Process {
		w.startProcess(cfgPath)
	} else {
		w.startInProcess(c)
	}

	host, port, _ := net.SplitHostPort(w.Addr)
	thost, tport, _ := net.SplitHostPort(w.Target.Addr)
	knownHosts := filepath.Join(dir, "known_hosts")
	known := fmt.Sprintf("[%s]:%s %s", thost, tport, gossh.MarshalAuthorizedKey(w.Target.HostKey))
	jumpHostCfg := ""
	if w.JumpHost != nil {
		jhost, jport, _ := net.SplitHostPort(w.JumpHost.Addr)
		known += fmt.Sprintf("[%s]:%s %s", jhost, jport, gossh.MarshalAuthorizedKey(w.JumpHost.HostKey))
		jumpHostCfg = fmt.Sprintf("Host jumphost\n  HostName %s\n  Port %s\n  User %s\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n",
			jhost, jport, w.TargetUser, knownHosts)
	}
	os.WriteFile(knownHosts, []byte(known), 0o644)
	w.SSHConfig = filepath.Join(dir, "ssh_config")
	sshCfg := fmt.Sprintf(`Host bastion
  HostName %s
  Port %s
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PreferredAuthentications publickey,keyboard-interactive
  # INFO shows keyboard-interactive instructions ("Duo push sent").
  LogLevel INFO
  # AES-GCM first, as OpenSSH picks it on hosts with AES instructions.
  Ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com
Host target
  HostName %s
  Port %s
  User %s
  UserKnownHostsFile %s
  StrictHostKeyChecking yes
%sHost *
  IdentityFile %s
  IdentitiesOnly yes
  BatchMode no
  NumberOfPasswordPrompts 1
  LogLevel ERROR
  ConnectTimeout 20
`, host, port, thost, tport, w.TargetUser, knownHosts, jumpHostCfg, w.KeyPath)
	if err := os.WriteFile(w.SSHConfig, []byte(sshCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	askpass := filepath.Join(dir, "askpass")
	os.WriteFile(askpass, []byte("#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$BST_ASKPASS_LOG\"\ncat \"$BST_ANSWER\"\n"), 0o755)
	return w
}

// startInProcess serves the bastion from this process.
func (w *bstWorld) startInProcess(c *bastion.Config) {
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(testWriter{w.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, closeAudit, err := bastion.Setup(ctx, c, bastion.Deps{Logger: logger})
	if err != nil {
		cancel()
		w.t.Fatal(err)
	}
	w.Server = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	w.Addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	w.t.Cleanup(func() { cancel(); <-done; closeAudit() })
}

// startProcess runs "bastion serve" built from cmd/bastion.
func (w *bstWorld) startProcess(cfgPath string) {
	cmd := exec.Command(testenv.BuildCommand(w.t, "bastion"), "serve", "--config", cfgPath)
	cmd.Dir = w.Dir
	logf, err := os.Create(filepath.Join(w.Dir, "bastion.log"))
	if err != nil {
		w.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.Pid = cmd.Process.Pid
	w.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
		if w.t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			w.t.Logf("bastion log:\n%s", out)
		}
	})
	testenv.WaitTCP(w.t, "bastion serve", w.Addr, 10*time.Second)
}

func quoteAll(ss []string) string {
	var q []string
	for _, s := range ss {
		q = append(q, fmt.Sprintf("%q", s))
	}
	return strings.Join(q, ", ")
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// totp asks oathtool for the user's current code.
func (w *bstWorld) totp(user string) string {
	w.t.Helper()
	u := w.users[user]
	out, err := exec.Command(testenv.Binary(w.t, "oathtool"), "--totp", "-b", u.Secret).Output()
	if err != nil {
		w.t.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// sshResult is one run of the OpenSSH client.
type sshResult struct {
	Out     string
	Err     error
	Prompts string // what askpass was asked
}

// ssh runs the real OpenSSH client with answer typed at every
// keyboard-interactive prompt (through SSH_ASKPASS).
func (w *bstWorld) ssh(answer string, args ...string) sshResult {
	w.t.Helper()
	return w.sshStdin("", answer, args...)
}

// sshStdin is ssh with stdin fed from a string.
func (w *bstWorld) sshStdin(stdin, answer string, args ...string) sshResult {
	w.t.Helper()
	d, err := os.MkdirTemp(w.Dir, "ssh")
	if err != nil {
		w.t.Fatal(err)
	}
	ans := filepath.Join(d, "answer")
	os.WriteFile(ans, []byte(answer+"\n"), 0o600)
	logp := filepath.Join(d, "prompts")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(w.t, "ssh"), append([]string{"-F", w.SSHConfig}, args...)...)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+filepath.Join(w.Dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0",
		"BST_ANSWER="+ans, "BST_ASKPASS_LOG="+logp, "SSH_AUTH_SOCK=")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	prompts, _ := os.ReadFile(logp)
	return sshResult{Out: string(out), Err: err, Prompts: string(prompts)}
}

// records returns the audit records so far.
func (w *bstWorld) records() []map[string]any {
	w.t.Helper()
	data, err := os.ReadFile(w.AuditPath)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			w.t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// find returns the records matching every key=value in want.
func (w *bstWorld) find(want map[string]any) []map[string]any {
	var out []map[string]any
	for _, r := range w.records() {
		ok := true
		for k, v := range want {
			if fmt.Sprint(r[k]) != fmt.Sprint(v) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

// waitRecord polls the audit log: records land when a channel closes,
// which can be just after the client exits.
func (w *bstWorld) waitRecord(want map[string]any) map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rs := w.find(want); len(rs) > 0 {
			return rs[0]
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(w.AuditPath)
			w.t.Fatalf("no audit record matching %v in:\n%s", want, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *bstWorld) verifyAudit() int {
	w.t.Helper()
	f, err := os.Open(w.AuditPath)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	n, err := audit.Verify(f)
	if err != nil {
		w.t.Fatalf("audit chain: %v", err)
	}
	return n
}
