package bastion_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/test/testenv"
)

type blocklistReporter struct{ c *client.Client }

func (r blocklistReporter) Report(ctx context.Context, a netip.Addr, reason string, n int, window time.Duration) error {
	return r.c.Report(ctx, client.Report{Addr: a, Reason: reason, Count: n, Window: window})
}

// TestBruteForceReportedToBlocklistd: failed logins from another host past
// the report threshold reach a real blocklistd (the project's own binary, over mTLS
// with a reporter certificate), which bans the source.
func TestBruteForceReportedToBlocklistd(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	bl := testenv.BuildCommand(t, "blocklistd")
	pki := filepath.Join(dir, "pki")
	if out, err := exec.Command(bl, "dev-certs", "--out", pki).CombinedOutput(); err != nil {
		t.Fatalf("blocklistd dev-certs: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := filepath.Join(dir, "blocklistd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: %s
tls: {cert: %[2]s/blocklistd.pem, key: %[2]s/blocklistd-key.pem, client_ca: %[2]s/ca.pem}
store: {driver: bolt, path: %[3]s/bl.db}
policy: {threshold: 3, window: 10m, ban: 1h}
cli: {url: "https://%[1]s", cert: %[2]s/admin.pem, key: %[2]s/admin-key.pem, ca: %[2]s/ca.pem}
`, addr, pki, dir)), 0o600)
	srv := exec.Command(bl, "serve", "--config", cfg)
	logf, _ := os.Create(filepath.Join(dir, "blocklistd.log"))
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "blocklistd.log"))
			t.Logf("blocklistd log:\n%s", b)
		}
	})
	testenv.WaitTCP(t, "blocklistd", addr, 10*time.Second)

	caPEM, _ := os.ReadFile(filepath.Join(pki, "ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "reporter.pem"), filepath.Join(pki, "reporter-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{URL: "https://" + addr, TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}

	// A bastion whose guard reports after 3 failures.
	bdir := t.TempDir()
	userKey := bstKey(t, filepath.Join(bdir, "id"))
	os.WriteFile(filepath.Join(bdir, "bastion.yaml"), []byte(fmt.Sprintf(`state_dir: state
brute_force: {source_threshold: 100, user_threshold: 100, report_threshold: 3, backoff_base: 1ms, backoff_max: 1ms}
users:
  alice: {keys: [%q]}
`, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(userKey.PublicKey()))))), 0o600)
	bc, err := bastion.LoadConfig(filepath.Join(bdir, "bastion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bsrv, closeAudit, err := bastion.Setup(ctx, bc, bastion.Deps{Reporter: blocklistReporter{c}, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// The attacker comes from another host (blocklistd rightly refuses to
	// ban loopback): two network namespaces joined by a veth pair.
	bastionHost, attackerHost := testenv.NewHost(t), testenv.NewHost(t)
	link := testenv.Connect(t, bastionHost, attackerHost)
	var ln net.Listener
	if err := bastionHost.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(link.A4.String(), "2222"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { bsrv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; closeAudit() })

	// An attacker without the key: each connection is one failure.
	_, stranger := bstKeyPair(t)
	attackerHost.Do(func() error {
		for range 3 {
			gossh.Dial("tcp", ln.Addr().String(), &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(stranger)},
				HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		}
		return nil
	})
	attacker := link.B4.String() + "/32"
	deadline := time.Now().Add(15 * time.Second)
	for {
		// Asked the way an operator asks: blocklistd's own CLI, admin certificate.
		out, err := exec.Command(bl, "list", "--json", "--config", cfg).CombinedOutput()
		if err == nil && strings.Contains(string(out), attacker) {
			if !strings.Contains(string(out), "bastion") {
				t.Errorf("decision does not name the bastion:\n%s", out)
			}
			audit, _ := os.ReadFile(filepath.Join(bdir, "state", "audit.jsonl"))
			if !strings.Contains(string(audit), `"method":"blocklist-report","result":"success"`) {
				t.Errorf("report not audited:\n%s", audit)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("blocklistd never banned %s: %v\n%s", attacker, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func bstKeyPair(t testing.TB) (string, gossh.Signer) {
	p := filepath.Join(t.TempDir(), "k")
	return p, bstKey(t, p)
}
