package bastion_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	glssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/bastion/mfa"
)

// TestRecordedTargetIsNotSelf: a record target configured at the
// bastion's own listener is refused before the recorder runs.
func TestRecordedTargetIsNotSelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, upriv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := gossh.NewSignerFromKey(upriv)
	key := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(user.PublicKey())))
	cfg := fmt.Sprintf(`state_dir: state
targets:
  - {name: me, addr: "[::ffff:127.0.0.2]:%d", modes: [record], host_keys: [%q]}
users:
  alice: {keys: [%q], targets: [me]}
`, ln.Addr().(*net.TCPAddr).Port, key, key)
	p := filepath.Join(dir, "bastion.yaml")
	os.WriteFile(p, []byte(cfg), 0o600)
	c, err := bastion.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	store, _ := mfa.NewTOTPStore(c.Path(c.TOTP.SecretDir), nil)
	store.SetSecret("alice", testSecret)
	ctx, cancel := context.WithCancel(context.Background())
	srv, closeAudit, err := bastion.Setup(ctx, c, bastion.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var recorded atomic.Int32
	srv.SetRecorder(func(sess glssh.Session, _ string, _ *bastion.Target) error {
		recorded.Add(1)
		sess.Exit(0)
		return nil
	})
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; closeAudit() })

	w := &world{addr: ln.Addr().String(), user: user, dir: dir}
	cl, err := w.dial(t, "alice", user, currentCode)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	s, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := s.CombinedOutput("me")
	if recorded.Load() != 0 || !strings.Contains(string(out), "me is this bastion") {
		t.Fatalf("a session to the bastion itself: recorder called %d times, output %q", recorded.Load(), out)
	}
	deadline := time.Now().Add(5 * time.Second)
	// The target's address is canonical: the mapped spelling is gone.
	for !strings.Contains(w.audit(t), "target me (127.0.0.2:") {
		if time.Now().After(deadline) {
			t.Fatalf("refusal not audited:\n%s", w.audit(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
