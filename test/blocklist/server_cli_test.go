package blocklist_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	pkiclient "github.com/rampart-sec/rampart/pki/client"
	"github.com/rampart-sec/rampart/test/testenv"
)

func buildBlocklistd(t *testing.T) string {
	t.Helper()
	return testenv.BuildCommand(t, "blocklistd")
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// startDaemon runs `blocklistd serve` and waits until it listens.
func startDaemon(t *testing.T, bin, cfg, listen string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
			return cmd, logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("blocklistd does not listen on %s:\n%s", listen, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stopDaemon(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("blocklistd serve exited with %v after SIGTERM", err)
	}
}

// The real binary: serve on bolt, the admin verbs over mTLS, refusals,
// metrics, a restart that loses nothing.
func TestServerBinaryBolt(t *testing.T) {
	bin := buildBlocklistd(t)
	p := newServerPKI(t)
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := filepath.Join(dir, "blocklistd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: %s
metrics_listen: %s
tls: {cert: %s, key: %s, client_ca: %s}
store: {driver: bolt, path: %s}
policy: {threshold: 3}
allow: [198.51.100.0/24]
cli: {cert: %s, key: %s}
`, listen, metricsAddr, p.file("blocklistd.pem"), p.file("blocklistd-key.pem"), p.file("ca.pem"), filepath.Join(dir, "blocklistd.db"),
		p.file("admin.pem"), p.file("admin-key.pem"))), 0o600)
	daemon, logs := startDaemon(t, bin, cfg, listen)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{
		{"ban", "192.0.2.0/24", "--ttl", "7d", "--reason", "cli test"},
		{"ban", "2001:db8:bad::/48"},
		{"allow", "10.9.8.7", "--reason", "monitoring"},
	} {
		if out, err := run(args...); err != nil {
			t.Fatalf("blocklistd %v: %v\n%s", args, err, out)
		}
	}
	if out, err := run("ban", "0.0.0.0/0"); err == nil || !strings.Contains(out, "broader than the policy") {
		t.Fatalf("ban 0.0.0.0/0: err %v, output %s", err, out)
	}
	if out, err := exec.Command(bin, "list").CombinedOutput(); err == nil {
		t.Fatalf("list without a way to reach the daemon succeeded: %s", out)
	}
	listJSON := func() client.Listing {
		out, err := exec.Command(bin, "list", "--json", "--config", cfg).Output()
		if err != nil {
			t.Fatalf("list --json: %v", err)
		}
		var l client.Listing
		if err := json.Unmarshal(out, &l); err != nil {
			t.Fatalf("list --json: %v\n%s", err, out)
		}
		return l
	}
	before := listJSON()
	if len(before.Decisions) != 2 || len(before.Allow) != 2 || before.Decisions[0].Reason != "cli test" {
		t.Fatalf("list: %+v", before)
	}
	if out, err := run("list"); err != nil || !strings.Contains(out, "192.0.2.0/24") || !strings.Contains(out, "monitoring") {
		t.Fatalf("list: %v\n%s", err, out)
	}

	// An agent sees the bans; reports of an allowlisted address do nothing.
	url := "https://" + listen
	agent := &serverAgent{c: p.client(t, url, "agent")}
	agent.sync(t, time.Second)
	if got := strings.Join(agent.list(), " "); got != "192.0.2.0/24 2001:db8:bad::/48" {
		t.Fatalf("agent holds %s", got)
	}
	rep := p.client(t, url, "reporter")
	for range 10 {
		if err := rep.Report(context.Background(), client.Report{Addr: netip.MustParseAddr("198.51.100.9"), Reason: "sshd", Count: 3}); err != nil {
			t.Fatal(err)
		}
	}

	// Refusals: 4xx with the reason in the daemon's log.
	raw := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS(t, "reporter")}}
	for _, tc := range []struct{ body, log string }{
		{`{"addr":"192.0.2.1","count":`, "malformed JSON"},
		{`{"addr":"192.0.2.1/24","count":1}`, "not an IP address"},
		{`{"addr":"192.0.2.1","count":1,"reason":"` + strings.Repeat("A", 5000) + `"}`, "larger than 4096 bytes"},
	} {
		resp, err := raw.Post(url+"/v1/report", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("%.40s: status %d", tc.body, resp.StatusCode)
		}
		// The daemon's stderr reaches us through a pipe: give it a moment.
		for start := time.Now(); !strings.Contains(logs.String(), tc.log); time.Sleep(20 * time.Millisecond) {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("log lacks %q:\n%s", tc.log, logs)
			}
		}
	}
	rogue := newServerPKI(t)
	if _, err := rogue.client(t, url, "agent").Sync(context.Background(), 0, time.Second); err == nil {
		t.Fatal("an agent certificate from another CA was accepted")
	}
	if _, err := p.client(t, url, "reporter").Sync(context.Background(), 0, time.Second); err == nil {
		t.Fatal("a reporter-only certificate may sync")
	}

	// Metrics.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`rampart_blocklistd_decisions{source="manual"} 2`, "rampart_blocklistd_connected_agents",
		`rampart_blocklistd_agent_sync_lag_versions{agent="agent"}`, `rampart_blocklistd_reports_accepted_total{outcome="allowlisted"} 10`,
		`rampart_blocklistd_reports_rejected_total{reason="invalid"} 2`, `rampart_blocklistd_reports_rejected_total{reason="too_large"} 1`} {
		if !bytes.Contains(body, []byte(m)) {
			t.Errorf("metrics lack %s", m)
		}
	}

	// A second daemon on the same bolt file refuses to start.
	out, err := exec.Command(bin, "serve", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "open") {
		t.Fatalf("second daemon on the same store: %v\n%s", err, out)
	}

	// Restart loses nothing.
	stopDaemon(t, daemon)
	startDaemon(t, bin, cfg, listen)
	after := listJSON()
	if len(after.Decisions) != len(before.Decisions) || len(after.Allow) != len(before.Allow) {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	for i := range after.Decisions {
		if after.Decisions[i].Prefix != before.Decisions[i].Prefix || !after.Decisions[i].Expires.Equal(before.Decisions[i].Expires) {
			t.Fatalf("decision %d: after restart %+v, before %+v", i, after.Decisions[i], before.Decisions[i])
		}
	}
	fresh := &serverAgent{c: p.client(t, url, "agent")}
	fresh.sync(t, time.Second)
	if strings.Join(fresh.list(), " ") != strings.Join(agent.list(), " ") {
		t.Fatalf("after restart agent holds %v, before %v", fresh.list(), agent.list())
	}
	if out, err := run("unban", "192.0.2.0/24"); err != nil {
		t.Fatalf("unban: %v\n%s", err, out)
	}
	agent.syncUntil(t, "unban", func(s map[netip.Prefix]bool) bool { return !s[netip.MustParsePrefix("192.0.2.0/24")] })
}

// blocklistd with certificates from the real pki: its own from
// tls.cert_dir (the directory `pki bootstrap` wrote, with the SANs the
// README's `pki token` line gives), the admin verbs' from cli.cert_dir, an
// agent's IP SAN making its address a fleet host that `ban` refuses unless
// --force; list filters.
func TestServerBinaryPKICertDir(t *testing.T) {
	bin := buildBlocklistd(t)
	pkiBin := testenv.BuildCommand(t, "pki")
	dir := t.TempDir()
	caPort := testenv.FreePort(t)
	caURL := fmt.Sprintf("https://localhost:%d", caPort)
	pkiRun := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(pkiBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("pki %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := pkiRun("init", "--dir", filepath.Join(dir, "ca"), "--listen", fmt.Sprintf("127.0.0.1:%d", caPort), "--dns", "localhost", "--dns", "127.0.0.1")
	_, fp, ok := strings.Cut(out, "root fingerprint: ")
	if !ok {
		t.Fatalf("pki init printed no fingerprint:\n%s", out)
	}
	fp = strings.Fields(fp)[0]
	caCfg := filepath.Join(dir, "ca", "pki.yaml")
	serve := exec.Command(pkiBin, "serve", "--config", caCfg)
	serveLog := &lockedBuffer{}
	serve.Stdout, serve.Stderr = serveLog, serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Kill(); serve.Wait() })
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := hc.Get(caURL + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pki serve not healthy:\n%s", serveLog)
		}
	}
	join := func(name string, args ...string) string {
		tok := strings.TrimSpace(pkiRun(append([]string{"token", name, "--config", caCfg}, args...)...))
		out := filepath.Join(dir, name)
		pkiRun("bootstrap", "--ca-url", caURL, "--fingerprint", fp, "--token", tok, "--out", out)
		return out
	}
	// The README's lines.
	srvDir := join("blocklistd", "--san", "localhost", "--san", "127.0.0.1")
	adminDir := join("alice", "--role", "admin")
	web1Dir := join("web1", "--san", "web1.internal", "--san", "192.0.2.55", "--role", "agent")

	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := filepath.Join(dir, "blocklistd.yaml")
	writeFleetFile(t, cfg, fmt.Sprintf(`listen: %s
tls: {cert_dir: %s}
store: {driver: bolt, path: %s}
cli: {url: 'https://%s', cert_dir: %s}
`, listen, srvDir, filepath.Join(dir, "blocklistd.db"), listen, adminDir))
	daemon, logs := startDaemon(t, bin, cfg, listen)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
		return string(out), err
	}
	// The agent web1 follows the blocklist with its pki certificate.
	src, err := pkiclient.NewSource(web1Dir)
	if err != nil {
		t.Fatal(err)
	}
	web1, err := client.New(client.Config{URL: "https://" + listen, TLS: src.ClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := web1.Sync(context.Background(), 0, 0); err != nil {
		t.Fatalf("agent sync with a pki certificate: %v\n%s", err, logs)
	}
	// Its address is now a fleet host.
	for _, target := range []string{"192.0.2.55", "192.0.2.0/24"} {
		if out, err := run("ban", target); err == nil || !strings.Contains(out, `fleet host "web1"`) {
			t.Fatalf("ban %s of a fleet host: %v\n%s", target, err, out)
		}
	}
	for _, args := range [][]string{{"ban", "192.0.2.55", "--force", "--reason", "compromised"}, {"ban", "198.51.100.7"}, {"ban", "198.51.100.8"}, {"ban", "203.0.113.0/24"}} {
		if out, err := run(args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if out, err := run("list", "--prefix", "198.51.100.0/24", "--limit", "1"); err != nil || !strings.Contains(out, "1 of 2 decisions") || !strings.Contains(out, "198.51.100.7/32") || strings.Contains(out, "198.51.100.8") {
		t.Fatalf("list --prefix --limit: %v\n%s", err, out)
	}
	if out, err := run("list", "--prefix", "203.0.113.9", "--source", "manual"); err != nil || !strings.Contains(out, "203.0.113.0/24") || strings.Contains(out, "198.51.100") {
		t.Fatalf("list --prefix ADDR: %v\n%s", err, out)
	}
	// The same verbs from flags and the environment, without the config.
	cmd := exec.Command(bin, "list", "--source", "report")
	cmd.Env = append(os.Environ(), "BLOCKLISTD_URL=https://"+listen, "BLOCKLISTD_CERT_DIR="+adminDir)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "0 decisions") {
		t.Fatalf("list with BLOCKLISTD_CERT_DIR: %v\n%s", err, out)
	}
	stopDaemon(t, daemon)
}
