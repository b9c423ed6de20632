package bastion_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	glssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/recorded"
	"github.com/rampart-sec/rampart/test/testenv"
)

// recKeys is the key material of one test world: the user CA the target
// trusts, the host CA that certifies the target, and the user's key for the
// proxy.
type recKeys struct {
	dir       string
	userCA    gossh.Signer
	hostCA    gossh.Signer
	clientKey string // private key file for ssh -i
	clientPub gossh.PublicKey
}

func recNewKeys(t testing.TB) *recKeys {
	t.Helper()
	dir := t.TempDir()
	k := &recKeys{dir: dir}
	var priv ed25519.PrivateKey
	k.hostCA, _ = recSigner(t)
	var cs gossh.Signer
	cs, priv = recSigner(t)
	k.clientPub = cs.PublicKey()
	k.clientKey = filepath.Join(dir, "id_ed25519")
	recWritePrivate(t, k.clientKey, priv)
	return k
}

func recSigner(t testing.TB) (gossh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

func recWritePrivate(t testing.TB, path string, priv ed25519.PrivateKey) {
	t.Helper()
	blk, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
}

// recSSHD is a real OpenSSH sshd target.
type recSSHD struct {
	Addr    string
	HostKey gossh.PublicKey // the plain host key
	LogPath string
	Dir     string
}

// recStartSSHD starts /usr/sbin/sshd (testenv.StartSSHD) on 127.0.0.1,
// trusting userCA for user certificates (TrustedUserCAKeys) and presenting
// a host certificate signed by hostCA for 127.0.0.1 and "target". Root may
// log in with a certificate (tests run as root).
func recStartSSHD(t testing.TB, userCA, hostCA gossh.Signer) *recSSHD {
	t.Helper()
	s := testenv.StartSSHD(t, testenv.SSHDOptions{
		HostCA:             hostCA,
		HostCertPrincipals: []string{"127.0.0.1", "target"},
		TrustedUserCAKeys:  []gossh.PublicKey{userCA.PublicKey()},
		Config:             []string{"AcceptEnv LANG LC_* TERM RAMPART_NOT_ALLOWED"},
	})
	return &recSSHD{Addr: s.Addr, HostKey: s.HostKey, LogPath: s.LogPath, Dir: s.Dir}
}

func recTail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// recAudit collects audit events.
type recAudit struct {
	mu     sync.Mutex
	events []recEvent
}

type recEvent struct {
	Name   string         `json:"event"`
	Fields map[string]any `json:"fields"`
}

func (a *recAudit) add(name string, f map[string]any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, recEvent{name, f})
}

func (a *recAudit) find(name string) []recEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []recEvent
	for _, e := range a.events {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func (a *recAudit) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, _ := json.MarshalIndent(a.events, "", " ")
	return string(b)
}

// recProxyConfig is everything a proxy server needs; it crosses into a
// child process as JSON.
type recProxyConfig struct {
	Dir          string
	UserCAKey    string // OpenSSH private key PEM
	ClientPub    string // authorized key line
	TargetAddr   string
	TargetUser   string
	HostCA       string   // authorized key line; empty: no host CA
	HostKeys     []string // pinned host keys, authorized key lines
	Policy       string
	Listen       string
	NoSync       bool
	AuditPath    string // child: audit events as JSON lines
	Ciphers      []string
	MaxRetention int64
	CPUProfile   string // child: write a CPU profile here until SIGTERM
	RecordInput  bool
}

// recServe runs a minimal gliderlabs server (public key auth only) whose
// every session goes to proxy.Serve. It returns when ctx ends.
func recServe(ctx context.Context, ln net.Listener, cfg recProxyConfig, audit func(string, map[string]any)) error {
	ca, err := gossh.ParsePrivateKey([]byte(cfg.UserCAKey))
	if err != nil {
		return err
	}
	target := recorded.Target{Name: "target", Addr: cfg.TargetAddr, User: cfg.TargetUser}
	if cfg.HostCA != "" {
		if target.HostCA, _, _, _, err = gossh.ParseAuthorizedKey([]byte(cfg.HostCA)); err != nil {
			return err
		}
	}
	for _, k := range cfg.HostKeys {
		pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			return err
		}
		target.HostKeys = append(target.HostKeys, pk)
	}
	allowed, _, _, _, err := gossh.ParseAuthorizedKey([]byte(cfg.ClientPub))
	if err != nil {
		return err
	}
	p, err := recorded.New(recorded.Options{
		Dir: cfg.Dir, UserCA: ca, Audit: audit, OnRecordFailure: recorded.FailurePolicy(cfg.Policy),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoSync: cfg.NoSync, Ciphers: cfg.Ciphers,
		Retention: recorded.Retention{MaxBytes: cfg.MaxRetention}, RecordInput: cfg.RecordInput,
	})
	if err != nil {
		return err
	}
	handler := func(s glssh.Session) { p.Serve(s, s.User(), target) }
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := gossh.NewSignerFromKey(hostPriv)
	srv := &glssh.Server{
		Handler:           handler,
		SubsystemHandlers: map[string]glssh.SubsystemHandler{"sftp": handler},
		PublicKeyHandler: func(_ glssh.Context, key glssh.PublicKey) bool {
			return glssh.KeysEqual(key, allowed)
		},
		HostSigners: []glssh.Signer{hk},
	}
	if len(cfg.Ciphers) > 0 {
		srv.ServerConfigCallback = func(glssh.Context) *gossh.ServerConfig {
			c := &gossh.ServerConfig{}
			c.Ciphers = cfg.Ciphers
			return c
		}
	}
	go func() { <-ctx.Done(); srv.Close() }()
	err = srv.Serve(ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// recWorld is a target sshd plus an in-process recording proxy.
type recWorld struct {
	keys   *recKeys
	sshd   *recSSHD
	cfg    recProxyConfig
	audit  *recAudit
	addr   string // the proxy's host:port
	known  string // known_hosts path for the OpenSSH client (accept-new)
	cancel context.CancelFunc
}

// recNewWorld starts a target and an in-process proxy; mutate changes the
// proxy config before it starts.
func recNewWorld(t testing.TB, mutate func(*recProxyConfig)) *recWorld {
	t.Helper()
	return recNewWorldWith(t, func(c *recProxyConfig, _ *recWorld) {
		if mutate != nil {
			mutate(c)
		}
	})
}

// recNewWorldWith is recNewWorld whose mutate also sees the target.
func recNewWorldWith(t testing.TB, mutate func(*recProxyConfig, *recWorld)) *recWorld {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Binary(t, "ssh")
	w := &recWorld{audit: &recAudit{}}
	w.keys, w.cfg = recNewKeysWithCA(t)
	w.sshd = recStartSSHD(t, w.keys.userCA, w.keys.hostCA)
	w.cfg.TargetAddr = w.sshd.Addr
	w.cfg.TargetUser = testenv.SSHUser(t) // an unprivileged /bin/sh account
	w.cfg.Dir = filepath.Join(t.TempDir(), "recordings")
	if mutate != nil {
		mutate(&w.cfg, w)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	w.known = filepath.Join(t.TempDir(), "known_hosts")
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	done := make(chan error, 1)
	go func() { done <- recServe(ctx, ln, w.cfg, w.audit.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy server: %v", err)
		}
		if t.Failed() {
			t.Logf("audit:\n%s", recTail(w.audit.String(), 4000))
		}
	})
	return w
}

// recNewKeysWithCA makes keys where the user CA's private key is kept as
// PEM for the proxy config (which may cross into a child process).
func recNewKeysWithCA(t testing.TB) (*recKeys, recProxyConfig) {
	t.Helper()
	k := recNewKeys(t)
	caSigner, caPriv := recSigner(t)
	k.userCA = caSigner
	blk, err := gossh.MarshalPrivateKey(caPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	return k, recProxyConfig{
		UserCAKey: string(pem.EncodeToMemory(blk)),
		ClientPub: string(gossh.MarshalAuthorizedKey(k.clientPub)),
		HostCA:    string(gossh.MarshalAuthorizedKey(k.hostCA.PublicKey())),
		NoSync:    true,
		Policy:    "refuse",
	}
}

// sshArgs are the OpenSSH client arguments to reach the proxy at addr as
// user "alice".
func (w *recWorld) sshArgs(addr string, extra ...string) []string {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-F", "/dev/null", "-i", w.keys.clientKey, "-p", port,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=" + w.known}
	args = append(args, extra...)
	return append(args, "alice@"+host)
}

// ssh runs the OpenSSH client through the proxy with a command.
func (w *recWorld) ssh(t testing.TB, command string, extra ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(w.sshArgs(w.addr, extra...), command)
	out, err := exec.CommandContext(ctx, testenv.Binary(t, "ssh"), args...).CombinedOutput()
	return string(out), err
}

// recSharedDir returns a fresh directory the target's unprivileged login
// user can read and write (t.TempDir is root's alone).
func recSharedDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "rampart-recorded-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// recCasts returns the screen recordings in dir: the .cast files that are
// not sftp/scp transfer logs (ID.transfers.cast).
func recCasts(t testing.TB, dir string) []string {
	t.Helper()
	all, _ := filepath.Glob(filepath.Join(dir, "*.cast"))
	var m []string
	for _, p := range all {
		if !strings.HasSuffix(p, ".transfers.cast") {
			m = append(m, p)
		}
	}
	return m
}

// recWaitFor polls cond until it holds or the deadline passes.
func recWaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// recChildEnv names the variable that turns the test binary into a proxy
// server (see TestRecordedChildServer).
const recChildEnv = "RAMPART_RECORDED_CHILD"

// recStartChild runs the proxy in a re-executed test binary, so a test can
// SIGKILL it or a benchmark can measure its CPU and memory alone.
func recStartChild(t testing.TB, cfg recProxyConfig) (addr string, cmd *exec.Cmd) {
	t.Helper()
	b, _ := json.Marshal(cfg)
	cmd = exec.Command(os.Args[0], "-test.run=^TestRecordedChildServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), recChildEnv+"="+string(b))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("proxy child: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
	if !ok {
		t.Fatalf("proxy child said %q", line)
	}
	go io.Copy(io.Discard, stdout)
	return addr, cmd
}

// TestRecordedChildServer is the proxy server of recStartChild; run any
// other way it does nothing.
func TestRecordedChildServer(t *testing.T) {
	raw := os.Getenv(recChildEnv)
	if raw == "" {
		return
	}
	var cfg recProxyConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var auditOut io.Writer = io.Discard
	if cfg.AuditPath != "" {
		f, err := os.OpenFile(cfg.AuditPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		auditOut = f
	}
	audit := func(name string, f map[string]any) {
		b, _ := json.Marshal(recEvent{name, f})
		mu.Lock()
		defer mu.Unlock()
		auditOut.Write(append(b, '\n'))
	}
	ctx := context.Background()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			t.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	if err := recServe(ctx, ln, cfg, audit); err != nil {
		t.Fatal(err)
	}
}

func recSHA256(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// recAsciinemaCat runs `asciinema cat FILE` (which wants a terminal) under
// script(1) and returns what it printed.
func recAsciinemaCat(t testing.TB, path string) (string, error) {
	t.Helper()
	asciinema := testenv.Binary(t, "asciinema")
	out, err := exec.Command(testenv.Binary(t, "script"), "-qec", recShellQuote(asciinema, "cat", path), "/dev/null").CombinedOutput()
	return string(out), err
}

func recShellQuote(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// recTmux is a private tmux server with one session of a fixed size.
type recTmux struct {
	t    testing.TB
	bin  string
	sock string
}

func recNewTmux(t testing.TB, cols, rows int, command string) *recTmux {
	t.Helper()
	m := &recTmux{t: t, bin: testenv.Binary(t, "tmux"), sock: filepath.Join(t.TempDir(), "tmux.sock")}
	m.run("-f", "/dev/null", "new-session", "-d", "-s", "rec", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), command)
	m.run("set-option", "-g", "status", "off")
	t.Cleanup(func() { exec.Command(m.bin, "-S", m.sock, "kill-server").Run() })
	return m
}

func (m *recTmux) run(args ...string) string {
	m.t.Helper()
	out, err := exec.Command(m.bin, append([]string{"-S", m.sock}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// screen is the visible pane with its colours and attributes (as escape
// sequences), trailing blank lines dropped.
func (m *recTmux) screen() string {
	m.t.Helper()
	return strings.TrimRight(m.run("capture-pane", "-e", "-p", "-t", "rec"), "\n ")
}

func (m *recTmux) waitScreen(what string, cond func(string) bool) string {
	m.t.Helper()
	var s string
	recWaitFor(m.t, what, 20*time.Second, func() bool {
		s = m.screen()
		return cond(s)
	})
	return s
}
