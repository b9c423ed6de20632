package bastion_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	glssh "github.com/gliderlabs/ssh"
	"github.com/pquerna/otp/totp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/bastion/mfa"
)

const testSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

type world struct {
	addr   string
	user   gossh.Signer
	ca     gossh.Signer
	dir    string
	srv    *bastion.Server
	mu     sync.Mutex
	served []string // what the fake recorder was asked
}

// newWorld runs a bastion in this process with users u1..u9 (TOTP) and a
// certificate-only user "cert", and a fake recorder.
func newWorld(t *testing.T, bruteForce string) *world {
	t.Helper()
	if bruteForce == "" {
		bruteForce = "brute_force: {source_threshold: 1000, user_threshold: 1000, backoff_base: 1ms, backoff_max: 2ms, report_threshold: -1}"
	}
	dir := t.TempDir()
	_, upriv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := gossh.NewSignerFromKey(upriv)
	_, cpriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, _ := gossh.NewSignerFromKey(cpriv)
	key := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(user.PublicKey())))
	var users strings.Builder
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&users, "  u%d: {keys: [%q], targets: [db1, web1, \"127.0.0.1:*\"]}\n", i, key)
	}
	cfg := fmt.Sprintf(`state_dir: state
trusted_user_ca_keys: [%q]
%s
targets:
  - {name: db1, addr: "10.255.0.6:22", modes: [record], host_keys: [%q]}
  - {name: web1, addr: "10.255.0.5:22"}
users:
%s  cert: {targets: [web1]}
`, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(ca.PublicKey()))), bruteForce, key, users.String())
	p := filepath.Join(dir, "bastion.yaml")
	os.WriteFile(p, []byte(cfg), 0o600)
	c, err := bastion.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	store, _ := mfa.NewTOTPStore(c.Path(c.TOTP.SecretDir), nil)
	for i := 1; i <= 9; i++ {
		store.SetSecret(fmt.Sprintf("u%d", i), testSecret)
	}
	store.SetSecret("cert", testSecret)
	ctx, cancel := context.WithCancel(context.Background())
	srv, closeAudit, err := bastion.Setup(ctx, c, bastion.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{user: user, ca: ca, dir: dir, srv: srv}
	srv.SetRecorder(func(sess glssh.Session, u string, tg *bastion.Target) error {
		w.mu.Lock()
		w.served = append(w.served, fmt.Sprintf("%s->%s cmd=%q", u, tg.Name, sess.RawCommand()))
		w.mu.Unlock()
		io.WriteString(sess, "recorded session to "+tg.Name+"\n")
		sess.Exit(0)
		return nil
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	w.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; closeAudit() })
	return w
}

func (w *world) audit(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(w.dir, "state", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dial logs in as user, answering keyboard-interactive with answer
// ("" means the current TOTP code).
func (w *world) dial(t *testing.T, user string, signer gossh.Signer, answer func() string) (*gossh.Client, error) {
	ki := gossh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
		ans := make([]string, len(questions))
		for i := range ans {
			ans[i] = answer()
		}
		return ans, nil
	})
	return gossh.Dial("tcp", w.addr, &gossh.ClientConfig{User: user, Auth: []gossh.AuthMethod{gossh.PublicKeys(signer), ki},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
}

func currentCode() string {
	c, _ := totp.GenerateCode(testSecret, time.Now())
	return c
}

func TestKeyAloneIsNotEnough(t *testing.T) {
	w := newWorld(t, "")
	_, err := gossh.Dial("tcp", w.addr, &gossh.ClientConfig{User: "u1", Auth: []gossh.AuthMethod{gossh.PublicKeys(w.user)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("key alone: %v", err)
	}
	if _, err := w.dial(t, "u1", w.user, func() string { return "000000" }); err == nil {
		t.Fatal("wrong code accepted")
	}
}

func TestRefusalsAreAudited(t *testing.T) {
	w := newWorld(t, "")
	c, err := w.dial(t, "u2", w.user, currentCode)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := sess.SendRequest("auth-agent-req@openssh.com", true, nil); ok {
		t.Error("agent forwarding accepted")
	}
	if ok, _ := sess.SendRequest("x11-req", true, gossh.Marshal(struct {
		Single        bool
		Proto, Cookie string
		Screen        uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00", 0})); ok {
		t.Error("X11 forwarding accepted")
	}
	sess.Close()
	if _, _, err := c.OpenChannel("direct-streamlocal@openssh.com", nil); err == nil {
		t.Error("unix socket forwarding accepted")
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("remote forwarding accepted")
	}
	if _, err := c.Dial("tcp", "10.255.0.6:22"); err == nil {
		t.Error("jump to a record-only target accepted")
	}
	if _, err := c.Dial("tcp", "192.0.2.1:22"); err == nil {
		t.Error("jump outside the list accepted")
	}
	log := w.audit(t)
	for _, kind := range []string{"agent-forwarding", "x11", "channel", "remote-forwarding", "jump"} {
		if !strings.Contains(log, `"type":"refusal","user":"u2","source":"127.0.0.1","method":"`+kind+`"`) {
			t.Errorf("no refusal of kind %s in the audit log:\n%s", kind, log)
		}
	}
}

func TestJumpRelaysAndAudits(t *testing.T) {
	w := newWorld(t, "")
	echo, _ := net.Listen("tcp", "127.0.0.1:0")
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	c, err := w.dial(t, "u3", w.user, currentCode)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Dial("tcp", echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("rampart "), 1000)
	go func() { conn.Write(msg); conn.(interface{ CloseWrite() error }).CloseWrite() }()
	got, _ := io.ReadAll(conn)
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo through the jump: %d bytes back, want %d", len(got), len(msg))
	}
	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(w.audit(t), `"type":"jump","user":"u3"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no jump record:\n%s", w.audit(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(w.audit(t), `"bytes_in":8000,"bytes_out":8000`) {
		t.Errorf("jump record bytes:\n%s", w.audit(t))
	}
}

func TestRecordedTargetSelection(t *testing.T) {
	w := newWorld(t, "")
	run := func(user, cmd string) string {
		c, err := w.dial(t, user, w.user, currentCode)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, _ := c.NewSession()
		out, _ := s.CombinedOutput(cmd)
		return string(out)
	}
	if out := run("u4", "db1 uptime"); !strings.Contains(out, "recorded session to db1") {
		t.Errorf("ssh bastion db1 uptime: %q", out)
	}
	if out := run("u5%db1", "ls -l"); !strings.Contains(out, "recorded session to db1") {
		t.Errorf("ssh u5%%db1@bastion: %q", out)
	}
	if out := run("u6", "web1"); !strings.Contains(out, "jump-only") {
		t.Errorf("recorded session to a jump-only target: %q", out)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	want := []string{`u4->db1 cmd="uptime"`, `u5->db1 cmd="ls -l"`}
	if strings.Join(w.served, "|") != strings.Join(want, "|") {
		t.Errorf("recorder calls %q, want %q", w.served, want)
	}
}

func TestMenuPicksATarget(t *testing.T) {
	w := newWorld(t, "")
	c, err := w.dial(t, "u7", w.user, currentCode)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	if err := s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	var out bytes.Buffer
	s.Stdout = &out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "9\r1\r")
	s.Wait()
	o := out.String()
	// web1 is jump-only: listed as such, never a number that would fail.
	for _, want := range []string{"1) db1", "Sessions (recorded)", "Jump only", "-  web1", "Pick 1 to 1", "recorded session to db1"} {
		if !strings.Contains(o, want) {
			t.Errorf("menu output lacks %q:\n%s", want, o)
		}
	}
}

func TestCertificateLogin(t *testing.T) {
	w := newWorld(t, "")
	cert := &gossh.Certificate{Key: w.user.PublicKey(), CertType: gossh.UserCert, KeyId: "cert@test", ValidPrincipals: []string{"cert"},
		ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix())}
	if err := cert.SignCert(rand.Reader, w.ca); err != nil {
		t.Fatal(err)
	}
	cs, _ := gossh.NewCertSigner(cert, w.user)
	c, err := w.dial(t, "cert", cs, currentCode)
	if err != nil {
		t.Fatalf("certificate + TOTP: %v", err)
	}
	c.Close()
	if !strings.Contains(w.audit(t), `"user":"cert","source":"127.0.0.1","method":"certificate","result":"success"`) {
		t.Errorf("certificate login not audited:\n%s", w.audit(t))
	}
}

func TestLockoutRefusesConnections(t *testing.T) {
	w := newWorld(t, "brute_force: {source_threshold: 2, user_threshold: 100, backoff_base: 1ms, backoff_max: 1ms, report_threshold: -1, lockout: 1h}")
	for range 2 {
		w.dial(t, "u8", w.user, func() string { return "000000" })
	}
	_, err := w.dial(t, "u8", w.user, currentCode)
	if err == nil {
		t.Fatal("locked-out source logged in with the right code")
	}
	if !strings.Contains(w.audit(t), "source locked out after repeated failures") {
		t.Errorf("lockout not audited:\n%s", w.audit(t))
	}
}

func TestSetPolicyTakesEffectForNewLogins(t *testing.T) {
	w := newWorld(t, "")
	c, err := bastion.ParseConfig("next.yaml", []byte("targets: [{name: web1, addr: '10.255.0.5:22'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := bastion.NewPolicy(c)
	if err != nil {
		t.Fatal(err)
	}
	w.srv.SetPolicy(p)
	if _, err := w.dial(t, "u9", w.user, currentCode); err == nil {
		t.Fatal("a user removed from the policy still logs in")
	}
	if !strings.Contains(w.audit(t), `"user":"u9","source":"127.0.0.1","method":"publickey","result":"failure","reason":"unknown user"`) {
		t.Errorf("refusal not audited:\n%s", w.audit(t))
	}
}

func TestMaxStartups(t *testing.T) {
	w := newWorld(t, "max_startups: 2\nbrute_force: {source_threshold: 1000, user_threshold: 1000, backoff_base: 1ms, backoff_max: 2ms, report_threshold: -1}")
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", w.addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	time.Sleep(100 * time.Millisecond) // let the server count them
	if _, err := w.dial(t, "u1", w.user, currentCode); err == nil {
		t.Fatal("a third unauthenticated connection was served with max_startups 2")
	}
	idle[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := w.dial(t, "u2", w.user, currentCode)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room after a pending connection closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	idle[1].Close()
}
