package pki_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/pki/client"
	"github.com/rampart-sec/rampart/test/testenv"
)

// proc is a daemon the test started; its output is kept for failures.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &syncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// cliCA is a CA created by `pki init` and run by `pki serve`, both the
// real binary.
type cliCA struct {
	bin, dir, cfg, url, fp string
	serve                  *proc
}

// startCLICA runs pki init, lets edit change the pki.yaml it wrote (nil:
// as written), and starts pki serve.
func startCLICA(t *testing.T, edit func(string) string) *cliCA {
	t.Helper()
	bin := pkiBinary(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	out := run(t, nil, bin, "init", "--dir", dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--dns", "localhost", "--dns", "127.0.0.1")
	m := regexp.MustCompile(`root fingerprint: ([0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pki init: no fingerprint in %q", out)
	}
	c := &cliCA{bin: bin, dir: dir, cfg: filepath.Join(dir, "pki.yaml"), url: fmt.Sprintf("https://localhost:%d", port), fp: m[1]}
	if edit != nil {
		b, err := os.ReadFile(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.cfg, []byte(edit(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.start(t)
	return c
}

func (c *cliCA) start(t *testing.T) {
	t.Helper()
	c.serve = startProc(t, c.bin, "serve", "--config", c.cfg)
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(c.url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pki serve did not answer /health:\n%s", c.serve.out.String())
}

// bootstrap joins a host with `pki token` + `pki bootstrap`.
func (c *cliCA) bootstrap(t *testing.T, name string, args ...string) string {
	t.Helper()
	tok := strings.TrimSpace(run(t, nil, c.bin, append([]string{"token", name, "--config", c.cfg}, args...)...))
	out := filepath.Join(t.TempDir(), name)
	run(t, nil, c.bin, "bootstrap", "--ca-url", c.url, "--fingerprint", c.fp, "--token", tok, "--out", out)
	return out
}

func serialOf(t *testing.T, dir string) string {
	t.Helper()
	b, err := client.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b.Leaf().SerialNumber.String()
}

// TestCRLBlocklistdRefusesRevoked: the real pki serve and blocklistd
// binaries. A revoked admin certificate is refused by the running
// blocklistd within 60 s (here: within its 2 s refresh), nothing
// restarted; another certificate still works; with the CA gone the last
// good CRL stays in force until max_age, then every client is refused
// (fail closed), and rampart_pki_crl_age_seconds says how old it is.
func TestCRLBlocklistdRefusesRevoked(t *testing.T) {
	t.Parallel() // mostly waiting (client start-up, CRL ageing): overlap with the other waiters
	c := startCLICA(t, func(y string) string {
		if !strings.Contains(y, "renew_period: 5m0s") {
			t.Fatalf("pki init wrote no crl.renew_period:\n%s", y)
		}
		return strings.Replace(y, "renew_period: 5m0s", "renew_period: 10s", 1)
	})
	srvDir := c.bootstrap(t, "blocklistd", "--san", "localhost", "--san", "127.0.0.1")
	alice := c.bootstrap(t, "alice", "--san", "alice.internal", "--role", "admin")
	bob := c.bootstrap(t, "bob", "--san", "bob.internal", "--role", "admin")

	bld := testenv.BuildCommand(t, "blocklistd")
	port, mport := testenv.FreePort(t), testenv.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "blocklistd.yaml")
	maxAge := 20 * time.Second
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
metrics_listen: 127.0.0.1:%d
tls:
  cert_dir: %[3]s
  crl:
    url: %[4]s/1.0/crl
    refresh: 2s
    max_age: %[5]s
store:
  driver: bolt
  path: %[6]s
`, port, mport, srvDir, c.url, maxAge, filepath.Join(t.TempDir(), "bl.db"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	bl := startProc(t, bld, "serve", "--config", cfg)
	listURL := fmt.Sprintf("https://127.0.0.1:%d/v1/admin/list", port)
	get := func(dir string) error {
		src, err := client.NewSource(dir)
		if err != nil {
			t.Fatal(err)
		}
		tc := src.ClientConfig()
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
		resp, err := hc.Get(listURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < limit {
			if cond() {
				return time.Since(start)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s: not within %s\nblocklistd:\n%s\npki serve:\n%s", what, limit, bl.out.String(), c.serve.out.String())
		return 0
	}
	waitFor("blocklistd answers alice", 30*time.Second, func() bool { return get(alice) == nil })

	serial := serialOf(t, alice)
	run(t, nil, c.bin, "revoke", serial, "--config", c.cfg)
	took := waitFor("blocklistd refuses the revoked certificate", 60*time.Second, func() bool { return get(alice) != nil })
	t.Logf("revoked certificate refused %s after pki revoke", took.Round(100*time.Millisecond))
	if err := get(alice); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("revoked: %v, want a TLS refusal", err)
	}
	if err := get(bob); err != nil {
		t.Fatalf("unrevoked certificate refused: %v\n%s", err, bl.out.String())
	}
	if !strings.Contains(bl.out.String(), "peer certificate revoked") {
		t.Errorf("blocklistd log does not name the revocation:\n%s", bl.out.String())
	}
	age := func() float64 {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
		if err != nil {
			return -2
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "rampart_pki_crl_age_seconds "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return -2
	}
	if a := age(); a < 0 || a > maxAge.Seconds() {
		t.Errorf("rampart_pki_crl_age_seconds %v with the CA up", a)
	}

	// The CA goes away: the last good CRL holds, then fail closed.
	c.serve.stop()
	stopped := time.Now()
	if err := get(bob); err != nil {
		t.Fatalf("CA down, CRL fresh: bob refused: %v", err)
	}
	if err := get(alice); err == nil {
		t.Fatal("CA down: the revoked certificate is accepted again")
	}
	waitFor("fail closed past max_age", maxAge+15*time.Second, func() bool { return get(bob) != nil })
	if since := time.Since(stopped); since < maxAge-12*time.Second {
		t.Errorf("bob refused %s after the CA stopped, before the CRL could be %s old", since, maxAge)
	}
	if a := age(); a < maxAge.Seconds() {
		t.Errorf("rampart_pki_crl_age_seconds %v after fail-closed, want > %v", a, maxAge.Seconds())
	}
	if !strings.Contains(bl.out.String(), "no fresh CRL") {
		t.Errorf("blocklistd log does not say why bob is refused:\n%s", bl.out.String())
	}
	// The CA comes back: bob is accepted again, alice never.
	c.start(t)
	waitFor("bob accepted once the CRL is fresh again", 30*time.Second, func() bool { return get(bob) == nil })
	if err := get(alice); err == nil {
		t.Fatal("the revoked certificate is accepted after the CA came back")
	}
}

// TestCRLSource: on both stores, the CA's CRL (served with an ETag, 304
// to a conditional GET, PEM with ?pem) lists a revoked serial at once,
// and a Source with CheckRevocation refuses that certificate as an mTLS
// client of its ServerConfig, and as a server to its ClientConfig.
func TestCRLSource(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			c := newCA(t, st.dsn(t), "")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			join := func(name string, roles ...string) string {
				dir := filepath.Join(t.TempDir(), name)
				tok := c.token(name, []string{name, "127.0.0.1"}, roles...)
				if _, err := client.Bootstrap(ctx, c.url, c.fp, tok, dir, client.BootstrapOptions{}); err != nil {
					t.Fatal(err)
				}
				return dir
			}
			srvDir, good, bad := join("srv.rampart.test"), join("good.rampart.test", "agent"), join("bad.rampart.test", "agent")

			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.client2TLS()}}
			resp, err := hc.Get(c.url + "/1.0/crl")
			if err != nil {
				t.Fatal(err)
			}
			der, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			etag := resp.Header.Get("ETag")
			crl, err := x509.ParseRevocationList(der)
			if err != nil || etag == "" || resp.Header.Get("Content-Type") != "application/pkix-crl" {
				t.Fatalf("GET /1.0/crl: %v, ETag %q, %q", err, etag, resp.Header.Get("Content-Type"))
			}
			req, _ := http.NewRequest("GET", c.url+"/1.0/crl", nil)
			req.Header.Set("If-None-Match", etag)
			if resp, err := hc.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
				t.Fatalf("conditional GET: %v %v", err, resp)
			}
			if resp, err := hc.Get(c.url + "/crl?pem"); err != nil {
				t.Fatal(err)
			} else if b, _ := io.ReadAll(resp.Body); !strings.HasPrefix(string(b), "-----BEGIN X509 CRL-----") {
				t.Fatalf("GET /crl?pem: %q", b)
			}

			src, err := client.NewSource(srvDir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.CheckRevocation(ctx, client.RevocationOptions{Refresh: 200 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			ts := serveTLS(t, src.ServerConfig(true))
			call := func(dir string) error {
				s, err := client.NewSource(dir)
				if err != nil {
					t.Fatal(err)
				}
				hc := &http.Client{Transport: &http.Transport{TLSClientConfig: s.ClientConfig(), DisableKeepAlives: true}}
				resp, err := hc.Get(ts.URL)
				if err == nil {
					resp.Body.Close()
				}
				return err
			}
			if err := call(bad); err != nil {
				t.Fatalf("before revocation: %v", err)
			}
			serial := serialOf(t, bad)
			rt, _ := c.prov.RevokeToken(c.url, serial)
			if err := c.client().Revoke(ctx, serial, rt, "test"); err != nil {
				t.Fatal(err)
			}
			resp, err = hc.Get(c.url + "/1.0/crl")
			if err != nil {
				t.Fatal(err)
			}
			der, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			next, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if next.Number.Cmp(crl.Number) <= 0 || len(next.RevokedCertificateEntries) != 1 ||
				next.RevokedCertificateEntries[0].SerialNumber.String() != serial || resp.Header.Get("ETag") == etag {
				t.Fatalf("CRL after revoke: number %v (was %v), entries %v, ETag %q", next.Number, crl.Number, next.RevokedCertificateEntries, resp.Header.Get("ETag"))
			}
			// The step CLI, an independent reader, verifies the CRL
			// against the intermediate and sees the serial.
			step := testenv.Binary(t, "step")
			out, err := runOut([]string{"STEPPATH=" + t.TempDir()}, step, "crl", "inspect", "--format", "json",
				"--ca", filepath.Join(c.dir, "intermediate_ca.crt"), "--roots", filepath.Join(c.dir, "root_ca.crt"), c.url+"/1.0/crl")
			if err != nil || !strings.Contains(out, serial) || !strings.Contains(out, `"valid": true`) {
				t.Errorf("step crl inspect --ca intermediate: %v\n%s", err, out)
			}
			// ... and it is the signature check that says so.
			if out, err := runOut([]string{"STEPPATH=" + t.TempDir()}, step, "crl", "inspect", "--format", "json",
				"--ca", filepath.Join(c.dir, "root_ca.crt"), "--roots", filepath.Join(c.dir, "root_ca.crt"), c.url+"/1.0/crl"); err != nil ||
				!strings.Contains(out, `"valid": false`) {
				t.Errorf("step crl inspect --ca root (not the signer): %v\n%s", err, out)
			}
			deadline := time.Now().Add(10 * time.Second)
			for call(bad) == nil && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if err := call(bad); err == nil {
				t.Fatal("revoked client certificate still accepted by ServerConfig")
			}
			if err := call(good); err != nil {
				t.Fatalf("unrevoked client refused: %v", err)
			}

			// The other way round: a client refuses a revoked server.
			badSrc, _ := client.NewSource(bad)
			ts2 := serveTLS(t, badSrc.ServerConfig(false))
			goodSrc, _ := client.NewSource(good)
			if _, err := goodSrc.CheckRevocation(ctx, client.RevocationOptions{}); err != nil {
				t.Fatal(err)
			}
			tc := goodSrc.ClientConfig()
			tc.ServerName = "127.0.0.1"
			_, err = (&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}).Get(ts2.URL)
			if !errors.Is(err, client.ErrPeerRevoked) {
				t.Fatalf("client to a revoked server: %v, want ErrPeerRevoked", err)
			}
		})
	}
}

// serveTLS answers 200 over tc on loopback (httptest would put its own
// certificate first).
func serveTLS(t *testing.T, tc *tls.Config) struct{ URL string } {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return struct{ URL string }{"https://" + ln.Addr().String()}
}
