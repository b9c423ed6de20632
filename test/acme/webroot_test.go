package acme_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/test/testenv"
)

// webServer plays the web server a webroot user already runs: Go's plain
// http.FileServer over the webroot, on the port where Pebble validates
// HTTP-01. It records the challenge paths it answered with 200.
type webServer struct {
	mu     sync.Mutex
	served map[string]int   // URL path -> times answered 200
	modes  [][2]fs.FileMode // of each served token file and its directory
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func startWebServer(t *testing.T, root string, port int) *webServer {
	t.Helper()
	ws := &webServer{served: map[string]int{}}
	files := http.FileServer(http.Dir(root))
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		files.ServeHTTP(sw, r)
		if sw.status == http.StatusOK && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			// A web server running as another user reads the token through
			// a world-searchable directory.
			p := filepath.Join(root, filepath.FromSlash(r.URL.Path))
			modes := [2]fs.FileMode{}
			if st, err := os.Stat(p); err == nil {
				modes[0] = st.Mode().Perm()
			}
			if st, err := os.Stat(filepath.Dir(p)); err == nil {
				modes[1] = st.Mode().Perm()
			}
			ws.mu.Lock()
			ws.served[r.URL.Path]++
			ws.modes = append(ws.modes, modes)
			ws.mu.Unlock()
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ws
}

// take returns the challenge paths served since the last call.
func (ws *webServer) take() []string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	var paths []string
	for p := range ws.served {
		paths = append(paths, p)
	}
	clear(ws.served)
	return paths
}

// immutable sets the ext4 immutable attribute on dir, which stops even
// root from creating files in it, and clears it at cleanup.
func immutable(t *testing.T, dir string) {
	t.Helper()
	chattr := testenv.Binary(t, "chattr")
	t.Cleanup(func() { exec.Command(chattr, "-i", dir).Run() })
	if out, err := exec.Command(chattr, "+i", dir).CombinedOutput(); err != nil {
		testenv.Need(t, fmt.Sprintf("chattr +i %s: %v: %s", dir, err, out))
	}
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o644); err == nil {
		testenv.Need(t, "chattr +i did not make "+dir+" read-only on this filesystem")
	}
}

// The webroot challenge: acme-renew writes the token where an existing web
// server serves it, Pebble fetches it from that server, and the token is
// removed afterwards. A webroot that cannot be written fails the
// certificate with an error naming the path and leaves the files on disk
// as they were.
func TestWebroot(t *testing.T) {
	t.Parallel()
	// Pebble reuses half of the valid authorizations by default; a reused
	// one would skip the webroot altogether.
	h := newHarness(t, testenv.PebbleOptions{Env: []string{"PEBBLE_AUTHZREUSE=0"}})
	webroot := filepath.Join(h.dir, "www")
	if err := os.Mkdir(webroot, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(webroot, "index.html"), []byte("the site\n"), 0o644)
	ws := startWebServer(t, webroot, h.p.HTTPPort)
	links := filepath.Join(h.dir, "links")
	domains := []string{"webroot.example.com", "www.webroot.example.com"}
	config := func(path string) *acme.Config {
		return h.loadYAML(h.header("") + fmt.Sprintf(
			"  - name: site\n    domains: [%s]\n    challenge: {webroot: {path: %q}}\n    output: {key: %q, fullchain: %q}\n",
			strings.Join(domains, ", "), path, filepath.Join(links, "site.key"), filepath.Join(links, "site.crt")))
	}
	cfg := config(webroot)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(h.p.Root(t))
	now := time.Now()

	run := h.runWith(cfg, now, nil)
	if r := result(t, run.sum, "site"); r.Action != acme.Renewed {
		t.Fatalf("webroot issuance: %+v", r)
	}
	checkPair(t, filepath.Join(links, "site.key"), filepath.Join(links, "site.crt"), roots, domains)
	// Pebble got one token per name from the file server, so lego wrote
	// them under <webroot>/.well-known/acme-challenge/; none is left.
	served := h.checkTokensGone(t, ws, webroot)
	if len(served) != len(domains) {
		t.Fatalf("the web server answered %d challenge paths %v, want one per name (%d)", len(served), served, len(domains))
	}

	// A webroot that cannot be written: its challenge directory (made by
	// the first run, as a web server's config often has it), the webroot
	// itself, and a webroot that does not exist.
	challengeDir := filepath.Join(webroot, ".well-known", "acme-challenge")
	missing := filepath.Join(h.dir, "no-such-webroot")
	for i, tc := range []struct {
		name, webroot, wantPath string
		setup                   func(t *testing.T)
	}{
		{"challenge directory not writable", webroot, challengeDir, func(t *testing.T) { immutable(t, challengeDir) }},
		{"webroot not writable", webroot, webroot, func(t *testing.T) {
			if err := os.RemoveAll(filepath.Join(webroot, ".well-known")); err != nil {
				t.Fatal(err)
			}
			immutable(t, webroot)
		}},
		{"webroot missing", missing, missing, func(*testing.T) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			cfg := config(tc.webroot)
			before := snapshot(t, filepath.Join(h.dir, "state", "certs"), links)
			run := h.runWith(cfg, now.Add(time.Duration(i+1)*time.Minute), nil, "site")
			r := result(t, run.sum, "site")
			if r.Action != acme.Failed || run.sum.Failed() != 1 {
				t.Fatalf("unwritable webroot: %+v", r)
			}
			if !strings.Contains(r.Err.Error(), tc.wantPath) || !strings.Contains(run.out, tc.wantPath) {
				t.Fatalf("the error does not name %s:\n%s", tc.wantPath, run.out)
			}
			sameSnapshot(t, "certificate files after a failed webroot run", before, snapshot(t, filepath.Join(h.dir, "state", "certs"), links))
			checkPair(t, filepath.Join(links, "site.key"), filepath.Join(links, "site.crt"), roots, domains)
			st, err := acme.LoadState(cfg.StatePath())
			if err != nil {
				t.Fatal(err)
			}
			if cs := st.Certificates["site"]; cs.Failures != i+1 || !strings.Contains(cs.LastError, tc.wantPath) {
				t.Fatalf("state after the failure: %+v", cs)
			}
		})
	}
	if t.Failed() {
		return
	}

	// A webroot the web server does not serve: Pebble finds no token, the
	// certificate fails, and the token written there is removed all the
	// same.
	unserved := filepath.Join(h.dir, "not-served")
	os.Mkdir(unserved, 0o755)
	before := snapshot(t, filepath.Join(h.dir, "state", "certs"), links)
	run = h.runWith(config(unserved), now.Add(30*time.Minute), nil, "site")
	if r := result(t, run.sum, "site"); r.Action != acme.Failed || !strings.Contains(r.Err.Error(), "/.well-known/acme-challenge/") {
		t.Fatalf("webroot not served: %+v", r)
	}
	sameSnapshot(t, "certificate files after a failed validation", before, snapshot(t, filepath.Join(h.dir, "state", "certs"), links))
	if left, err := os.ReadDir(filepath.Join(unserved, ".well-known", "acme-challenge")); err != nil || len(left) != 0 {
		t.Fatalf("after a failed validation the challenge directory holds %v (%v), want it empty", left, err)
	}
	if served := ws.take(); len(served) != 0 {
		t.Fatalf("the web server served %v from the other webroot", served)
	}

	// Writable again (the subtests' cleanups cleared the attribute): the
	// next forced run renews through the webroot.
	old := leafFile(t, filepath.Join(links, "site.crt"))
	run = h.runWith(config(webroot), now.Add(time.Hour), nil, "site")
	if r := result(t, run.sum, "site"); r.Action != acme.Renewed {
		t.Fatalf("after the webroot became writable: %+v", r)
	}
	if leafFile(t, filepath.Join(links, "site.crt")).SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatal("the certificate was not replaced")
	}
	if served := h.checkTokensGone(t, ws, webroot); len(served) != len(domains) {
		t.Fatalf("second issuance: the web server answered %v", served)
	}
}

// checkTokensGone checks that no challenge path the web server answered
// still exists under webroot, and returns those paths.
func (h *harness) checkTokensGone(t *testing.T, ws *webServer, webroot string) []string {
	t.Helper()
	ws.mu.Lock()
	modes := ws.modes
	ws.modes = nil
	ws.mu.Unlock()
	umask := processUmask(t)
	for _, m := range modes {
		if want := [2]fs.FileMode{0o644 &^ umask, 0o755 &^ umask}; m != want {
			t.Fatalf("served a token of mode %v from a directory of mode %v, want %v and %v", m[0], m[1], want[0], want[1])
		}
	}
	served := ws.take()
	for _, p := range served {
		if _, err := os.Stat(filepath.Join(webroot, filepath.FromSlash(p))); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("token %s still in the webroot after the run (%v)", p, err)
		}
	}
	left, _ := os.ReadDir(filepath.Join(webroot, ".well-known", "acme-challenge"))
	if len(left) != 0 {
		t.Fatalf("files left in the challenge directory: %v", left)
	}
	return served
}

// processUmask reads the umask without setting it (other tests run in
// parallel).
func processUmask(t *testing.T) fs.FileMode {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			return fs.FileMode(m)
		}
	}
	t.Fatal("no Umask in /proc/self/status")
	return 0
}
