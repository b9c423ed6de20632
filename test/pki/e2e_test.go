package pki_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/pki/client"
	"github.com/rampart-sec/rampart/test/testenv"
)

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEndToEnd runs init -> serve -> token -> bootstrap -> renew -> hook,
// and every refusal the issue lists, against each store.
func TestEndToEnd(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			c := newCA(t, st.dsn(t), "")
			ctx := context.Background()
			out := filepath.Join(t.TempDir(), "host1")
			tok := c.token("host1", []string{"host1.rampart.test", "127.0.0.1"}, "agent", "reporter")

			t.Run("bootstrap", func(t *testing.T) {
				b, err := client.Bootstrap(ctx, c.url, c.fp, tok, out, client.BootstrapOptions{Lifetime: 5 * time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				leaf := b.Leaf()
				if got := client.Roles(leaf); !slices.Equal(got, []string{"agent", "reporter"}) {
					t.Errorf("roles in certificate = %v, want [agent reporter]", got)
				}
				if !slices.Contains(leaf.DNSNames, "host1.rampart.test") || len(leaf.IPAddresses) != 1 {
					t.Errorf("names = %v %v", leaf.DNSNames, leaf.IPAddresses)
				}
				if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 7*time.Minute {
					t.Errorf("lifetime %s, asked for 5m", life)
				}
				for name, mode := range map[string]os.FileMode{client.KeyFile: 0o600, client.CertFile: 0o644, client.RootFile: 0o644} {
					fi, err := os.Stat(filepath.Join(out, name))
					if err != nil {
						t.Fatal(err)
					}
					if fi.Mode().Perm() != mode {
						t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
					}
				}
				if !strings.Contains(c.auditLog(), leaf.SerialNumber.String()) {
					t.Errorf("audit log lacks serial %s:\n%s", leaf.SerialNumber, c.auditLog())
				}
			})

			t.Run("renew-daemon-runs-hook", func(t *testing.T) {
				before, err := client.LoadBundle(out)
				if err != nil {
					t.Fatal(err)
				}
				marker := filepath.Join(t.TempDir(), "hook-ran")
				textfile := filepath.Join(t.TempDir(), "pki.prom")
				// The clock is moved past two thirds of the 5-minute lifetime,
				// so the daemon renews on its first look.
				shift := 4 * time.Minute
				r := &client.Renewer{Dir: out, Hook: "echo $PKI_DIR >> " + marker, Textfile: textfile,
					Now: func() time.Time { return time.Now().Add(shift) }}
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- r.Run(rctx) }()
				for i := 0; i < 500; i++ {
					if _, err := os.Stat(marker); err == nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if got := readFile(t, marker); !strings.Contains(got, out) {
					t.Fatalf("hook output %q, want the directory", got)
				}
				after, err := client.LoadBundle(out)
				if err != nil {
					t.Fatal(err)
				}
				if after.Leaf().SerialNumber.Cmp(before.Leaf().SerialNumber) == 0 {
					t.Error("serial unchanged after renewal")
				}
				if !after.Key.Public().(*ecdsa.PublicKey).Equal(before.Key.Public()) {
					t.Error("renewal changed the key")
				}
				if !strings.Contains(readFile(t, textfile), "rampart_pki_certificate_expiry_timestamp_seconds") {
					t.Error("textfile lacks the expiry metric")
				}
			})

			t.Run("replayed-token-refused", func(t *testing.T) {
				_, err := client.Bootstrap(ctx, c.url, c.fp, tok, t.TempDir(), client.BootstrapOptions{})
				wantErr(t, err, client.ErrTokenUsed)
				if !strings.Contains(err.Error(), "token already used") {
					t.Errorf("error does not say why: %v", err)
				}
			})

			t.Run("concurrent-replay-one-winner", func(t *testing.T) {
				replicas := []*testCA{c}
				if st.name == "postgresql" {
					replicas = append(replicas, c.replica())
				}
				concurrentReplay(t, replicas)
			})

			t.Run("token-for-A-cannot-get-B", func(t *testing.T) {
				tokA := c.token("a", []string{"a.rampart.test"})
				_, err := client.Bootstrap(ctx, c.url, c.fp, tokA, t.TempDir(), client.BootstrapOptions{Names: []string{"b.rampart.test"}})
				wantErr(t, err, client.ErrTokenWrongName)
			})

			t.Run("expired-token-refused", func(t *testing.T) {
				old := *c.prov
				old.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
				tok, err := old.Token(c.url, client.TokenRequest{Subject: "late.rampart.test", TTL: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				csr, _ := client.NewCSR(key, "late.rampart.test", []string{"late.rampart.test"})
				_, err = c.client().Sign(ctx, csr, tok, 0)
				wantErr(t, err, client.ErrTokenExpired)
			})

			t.Run("name-policy", func(t *testing.T) {
				for _, tc := range []struct {
					name  string
					sans  []string
					roles []string
				}{
					{"outside-dns", []string{"evil.example.com"}, nil},
					{"outside-ip", []string{"10.9.9.9"}, nil},
					{"unknown-role", []string{"x.rampart.test"}, []string{"root"}},
				} {
					t.Run(tc.name, func(t *testing.T) {
						tok := c.token("x", tc.sans, tc.roles...)
						_, err := client.Bootstrap(ctx, c.url, c.fp, tok, t.TempDir(), client.BootstrapOptions{})
						var ae *client.APIError
						if err == nil || !errorsAs(err, &ae) || ae.Status != http.StatusForbidden || !strings.Contains(ae.Message, "name policy") {
							t.Fatalf("want 403 name policy, got %v", err)
						}
					})
				}
			})

			t.Run("malformed-csr-and-token", func(t *testing.T) {
				for _, tc := range []struct {
					name, body, log string
				}{
					{"csr", `{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n","ott":"x.y.z"}`, "route=/sign status=400"},
					{"token", `{"csr":` + jsonString(validCSR(t)) + `,"ott":"not-a-token"}`, "route=/sign status=401"},
					{"json", `{"csr":`, "route=/sign status=400"},
				} {
					t.Run(tc.name, func(t *testing.T) {
						tr := &http.Transport{TLSClientConfig: c.client2TLS()}
						defer tr.CloseIdleConnections()
						resp, err := (&http.Client{Transport: tr}).Post(c.url+"/1.0/sign", "application/json", strings.NewReader(tc.body))
						if err != nil {
							t.Fatal(err)
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode < 400 || resp.StatusCode >= 500 {
							t.Fatalf("status %d, want 4xx", resp.StatusCode)
						}
						if !c.waitLog(tc.log) {
							t.Fatalf("no log line %q in:\n%s", tc.log, c.logs.String())
						}
					})
				}
			})

			t.Run("wrong-fingerprint-refused", func(t *testing.T) {
				// A token without the root pin, so the refusal comes from
				// fetching the root, not from the token.
				p := *c.prov
				p.RootSHA = ""
				tok, err := p.Token(c.url, client.TokenRequest{Subject: "fp.rampart.test"})
				if err != nil {
					t.Fatal(err)
				}
				bad := strings.Repeat("ab", 32)
				_, err = client.Bootstrap(ctx, c.url, bad, tok, t.TempDir(), client.BootstrapOptions{})
				wantErr(t, err, client.ErrFingerprint)
			})

			t.Run("revoke-then-recover-with-token", func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "rv")
				b, err := client.Bootstrap(ctx, c.url, c.fp, c.token("rv.rampart.test", nil), dir, client.BootstrapOptions{})
				if err != nil {
					t.Fatal(err)
				}
				serial := b.Leaf().SerialNumber.String()
				rt, err := c.prov.RevokeToken(c.url, serial)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.client().Revoke(ctx, serial, rt, "test"); err != nil {
					t.Fatal(err)
				}
				_, err = client.Renew(ctx, dir, "", client.FileOptions{})
				wantErr(t, err, client.ErrRevoked)
				tokFile := filepath.Join(t.TempDir(), "token")
				if err := os.WriteFile(tokFile, []byte(c.token("rv.rampart.test", nil)), 0o600); err != nil {
					t.Fatal(err)
				}
				r := &client.Renewer{Dir: dir, RecoveryTokenFile: tokFile}
				if _, err := r.RenewIfDue(ctx, true); err != nil {
					t.Fatal(err)
				}
				nb, _ := client.LoadBundle(dir)
				if nb.Leaf().SerialNumber.String() == serial {
					t.Error("recovery kept the revoked serial")
				}
			})

			t.Run("ssh-user-certificate", func(t *testing.T) {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				pub, _ := ssh.NewPublicKey(&key.PublicKey)
				cert, err := c.client().SignSSHUser(ctx, c.prov, pub, "alice", 5*time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				caPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(readFile(t, filepath.Join(c.dir, "ssh_user_ca_key.pub"))))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(cert.SignatureKey.Marshal(), caPub.Marshal()) || cert.CertType != ssh.UserCert {
					t.Fatalf("certificate not signed by the user CA")
				}
				if !slices.Equal(cert.ValidPrincipals, []string{"alice"}) {
					t.Errorf("principals %v", cert.ValidPrincipals)
				}
				if d := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second; d > 7*time.Minute {
					t.Errorf("validity %s, asked 5m", d)
				}
			})

			t.Run("ssh-host-certificate", func(t *testing.T) {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				pub, _ := ssh.NewPublicKey(&key.PublicKey)
				cert, err := c.client().SignSSHHost(ctx, c.prov, pub, []string{"h1.rampart.test"}, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				caPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(readFile(t, filepath.Join(c.dir, "ssh_host_ca_key.pub"))))
				if err != nil {
					t.Fatal(err)
				}
				if cert.CertType != ssh.HostCert || !bytes.Equal(cert.SignatureKey.Marshal(), caPub.Marshal()) || !slices.Equal(cert.ValidPrincipals, []string{"h1.rampart.test"}) {
					t.Fatalf("host certificate: type %d principals %v", cert.CertType, cert.ValidPrincipals)
				}
				// What an @cert-authority known_hosts line does.
				checker := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return bytes.Equal(auth.Marshal(), caPub.Marshal()) }}
				if err := checker.CheckCert("h1.rampart.test", cert); err != nil {
					t.Errorf("host certificate does not verify: %v", err)
				}
				if _, err := c.client().SignSSHHost(ctx, c.prov, pub, []string{"evil.example.com"}, time.Hour); err == nil {
					t.Error("host certificate outside the name policy issued")
				}
			})

			t.Run("ssh-users-provisioner-is-ssh-user-only", func(t *testing.T) {
				p, err := c.cfg.LoadSSHUserProvisioner(c.fp)
				if err != nil {
					t.Fatal(err)
				}
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				pub, _ := ssh.NewPublicKey(&key.PublicKey)
				if _, err := c.client().SignSSHUser(ctx, p, pub, "bob", 5*time.Minute); err != nil {
					t.Fatalf("user certificate: %v", err)
				}
				if _, err := c.client().SignSSHHost(ctx, p, pub, []string{"h.rampart.test"}, time.Hour); err == nil || !strings.Contains(err.Error(), "SSH user certificates only") {
					t.Errorf("ssh-users provisioner and a host certificate: %v", err)
				}
				tok, err := p.Token(c.url, client.TokenRequest{Subject: "x.rampart.test", Roles: []string{"admin"}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := client.Bootstrap(ctx, c.url, c.fp, tok, t.TempDir(), client.BootstrapOptions{}); err == nil || !strings.Contains(err.Error(), "SSH user certificates only") {
					t.Errorf("ssh-users provisioner and an X.509 certificate: %v", err)
				}
			})

			t.Run("restart-keeps-used-tokens", func(t *testing.T) {
				c.restart()
				_, err := client.Bootstrap(ctx, c.url, c.fp, tok, t.TempDir(), client.BootstrapOptions{})
				wantErr(t, err, client.ErrTokenUsed)
			})

			t.Run("metrics", func(t *testing.T) {
				// The registry is new since the restart: issue one more.
				if _, err := client.Bootstrap(ctx, c.url, c.fp, c.token("m.rampart.test", nil), t.TempDir(), client.BootstrapOptions{}); err != nil {
					t.Fatal(err)
				}
				mfs, err := c.reg.Gather()
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, mf := range mfs {
					if mf.GetName() == "rampart_pki_certificates_issued_total" {
						found = true
					}
				}
				if !found {
					t.Error("rampart_pki_certificates_issued_total not exported")
				}
			})
		})
	}
}

// TestReplicasShareUsedTokens: two CA replicas on one PostgreSQL; a token
// used at one is refused at the other.
func TestReplicasShareUsedTokens(t *testing.T) {
	testenv.RequireRoot(t)
	a := newCA(t, testenv.StartPostgres(t).DSN, "")
	b := a.replica()
	ctx := context.Background()
	tok := a.token("r.rampart.test", nil)
	if _, err := client.Bootstrap(ctx, a.url, a.fp, tok, t.TempDir(), client.BootstrapOptions{}); err != nil {
		t.Fatal(err)
	}
	// The token names replica a's URL; replica b has the same DNS names, so
	// the audience matches there too.
	_, err := client.Bootstrap(ctx, b.url, b.fp, tok, t.TempDir(), client.BootstrapOptions{})
	wantErr(t, err, client.ErrTokenUsed)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func validCSR(t *testing.T) string {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := client.NewCSR(key, "v.rampart.test", []string{"v.rampart.test"})
	if err != nil {
		t.Fatal(err)
	}
	return string(pemCSR(csr))
}

// concurrentReplay fires one token at the CA (or at several replicas) from
// many goroutines at once: exactly one may win.
func concurrentReplay(t *testing.T, replicas []*testCA) {
	t.Helper()
	c := replicas[0]
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := client.NewCSR(key, "race.rampart.test", []string{"race.rampart.test"})
	if err != nil {
		t.Fatal(err)
	}
	tok := c.token("race.rampart.test", []string{"race.rampart.test"})
	const n = 16
	var wg sync.WaitGroup
	var ok, used atomic.Int32
	for i := 0; i < n; i++ {
		r := replicas[i%len(replicas)]
		cl := r.client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.CloseIdleConnections()
			_, err := cl.Sign(context.Background(), csr, tok, 0)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, client.ErrTokenUsed):
				used.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || used.Load() != n-1 {
		t.Fatalf("one token used concurrently %d times: %d succeeded, %d refused as used; want exactly 1 success", n, ok.Load(), used.Load())
	}
}
