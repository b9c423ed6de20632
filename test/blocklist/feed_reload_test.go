package blocklist_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// The blocklistd binary with an HTTP feed that goes bad and a file:// feed
// added while it runs: bad bodies keep the entries (counted, logged), an
// operator accepts an emptied feed with `blocklistd feed accept`, and feeds
// come and go on SIGHUP or when the config file changes.
func TestFeedBinaryRefusalsAndReload(t *testing.T) {
	bin := buildBlocklistd(t)
	p := newServerPKI(t)
	dir := t.TempDir()
	var mu sync.Mutex
	body, ctype := "192.0.2.1\n192.0.2.2\n192.0.2.3\n192.0.2.4\n", "text/plain"
	feedSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", ctype)
		io.WriteString(w, body)
	}))
	defer feedSrv.Close()
	setFeed := func(ct, b string) { mu.Lock(); ctype, body = ct, b; mu.Unlock() }
	local := filepath.Join(dir, "local.txt")
	writeFleetFile(t, local, "198.51.100.7\n")

	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := filepath.Join(dir, "blocklistd.yaml")
	writeCfg := func(feeds string) {
		writeFleetFile(t, cfg, fmt.Sprintf(`listen: %s
metrics_listen: %s
tls: {cert: %s, key: %s, client_ca: %s}
store: {driver: bolt, path: %s}
cli: {cert: %s, key: %s}
feeds:
%s`, listen, metricsAddr, p.file("blocklistd.pem"), p.file("blocklistd-key.pem"), p.file("ca.pem"), filepath.Join(dir, "blocklistd.db"),
			p.file("admin.pem"), p.file("admin-key.pem"), feeds))
	}
	remote := fmt.Sprintf("  - {name: remote, url: '%s', interval: 1h}\n", feedSrv.URL)
	writeCfg(remote)
	daemon, logs := startDaemon(t, bin, cfg, listen)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
		return string(out), err
	}
	agent := &serverAgent{c: p.client(t, "https://"+listen, "agent")}
	has := func(want ...string) func(map[netip.Prefix]bool) bool {
		return func(s map[netip.Prefix]bool) bool {
			var got []string
			for p := range s {
				got = append(got, p.String())
			}
			slices.Sort(got)
			return slices.Equal(got, want)
		}
	}
	agent.syncUntil(t, "remote feed loaded", has("192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32", "192.0.2.4/32"))

	for _, tc := range []struct{ ctype, body, reason string }{
		{"text/html", "<html><body>Bad gateway</body></html>", "not_a_list"},
		{"text/plain", "\x1f\x8b\x08\x00\x00\x00\x00\x00garbage", "not_a_list"},
		{"text/plain", "", "empty"},
		{"text/plain", "192.0.2.1\n", "shrink"},
	} {
		setFeed(tc.ctype, tc.body)
		out, err := run("feed", "fetch", "remote")
		if err == nil || !strings.Contains(out, "refused ("+tc.reason+")") || !strings.Contains(out, "4 entries stay") {
			t.Fatalf("feed fetch of a %s body: %v\n%s", tc.reason, err, out)
		}
		waitLog(t, logs, "feed=remote reason="+tc.reason)
	}
	agent.sync(t, 0)
	if len(agent.set) != 4 {
		t.Fatalf("agent holds %v after refused fetches", agent.list())
	}
	metrics := scrape(t, metricsAddr)
	for _, m := range []string{`rampart_blocklistd_feed_failures_total{feed="remote",reason="not_a_list"} 2`,
		`rampart_blocklistd_feed_failures_total{feed="remote",reason="empty"} 1`,
		`rampart_blocklistd_feed_failures_total{feed="remote",reason="shrink"} 1`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	if out, err := run("feed", "status"); err != nil || !strings.Contains(out, "shrink: feed remote refused") {
		t.Fatalf("feed status: %v\n%s", err, out)
	}
	// The publisher really emptied the list: the operator says so.
	setFeed("text/plain", "# nothing listed today\n")
	if out, err := run("feed", "accept", "remote"); err != nil || !strings.Contains(out, "loaded, 0 entries") {
		t.Fatalf("feed accept: %v\n%s", err, out)
	}
	agent.syncUntil(t, "accepted emptying", has())

	// A file:// feed added with SIGHUP.
	writeCfg(remote + fmt.Sprintf("  - {name: local, url: 'file://%s', interval: 1h}\n", local))
	daemon.Process.Signal(syscall.SIGHUP)
	agent.syncUntil(t, "file feed added on SIGHUP", has("198.51.100.7/32"))
	// The file changes: `feed fetch` reads it at once.
	writeFleetFile(t, local, "198.51.100.7\n198.51.100.8\n")
	os.Chtimes(local, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if out, err := run("feed", "fetch", "local"); err != nil || !strings.Contains(out, "1 added") {
		t.Fatalf("feed fetch local: %v\n%s", err, out)
	}
	agent.syncUntil(t, "file feed changed", has("198.51.100.7/32", "198.51.100.8/32"))
	// The config file changes, no signal: remote goes, its (no) entries
	// with it, and local stays.
	setFeed("text/plain", "192.0.2.9\n")
	writeCfg(fmt.Sprintf("  - {name: local, url: 'file://%s', interval: 1h}\n  - {name: again, url: '%s', interval: 1h}\n", local, feedSrv.URL))
	agent.syncUntil(t, "feeds changed by editing the config", has("192.0.2.9/32", "198.51.100.7/32", "198.51.100.8/32"))
	// A broken config is refused and the running one stays.
	writeFleetFile(t, cfg, "listen: [\n")
	daemon.Process.Signal(syscall.SIGHUP)
	waitLog(t, logs, "configuration not reloaded")
	agent.sync(t, 0)
	if len(agent.set) != 3 {
		t.Fatalf("agent holds %v after a broken config was refused", agent.list())
	}
	stopDaemon(t, daemon)
}

func waitLog(t *testing.T, logs *lockedBuffer, want string) {
	t.Helper()
	for start := time.Now(); !strings.Contains(logs.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
