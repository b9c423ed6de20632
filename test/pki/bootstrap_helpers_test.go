package pki_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// binCA is a CA made by `pki init` and served by `pki serve` processes.
type binCA struct {
	bin, dir, cfg, url, fp string
}

// initBinCA runs pki init (dsn "" = bbolt) on a free port.
func initBinCA(t *testing.T, dsn string) *binCA {
	t.Helper()
	bin := pkiBinary(t)
	dir := filepath.Join(t.TempDir(), "ca")
	port := testenv.FreePort(t)
	args := []string{"init", "--dir", dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port)}
	if dsn != "" {
		args = append(args, "--store-dsn", dsn)
	}
	out := run(t, nil, bin, args...)
	c := &binCA{bin: bin, dir: dir, cfg: filepath.Join(dir, "pki.yaml"), url: fmt.Sprintf("https://localhost:%d", port)}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "root fingerprint: "); ok {
			c.fp = v
		}
	}
	if len(c.fp) != 64 {
		t.Fatalf("pki init printed no fingerprint:\n%s", out)
	}
	return c
}

// replicaConfig writes a copy of the CA's config listening on another port
// (same keys, same store) and returns its path and URL.
func (c *binCA) replicaConfig(t *testing.T) (string, string) {
	t.Helper()
	data, err := os.ReadFile(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(l, "listen: "):
			l = fmt.Sprintf("listen: 127.0.0.1:%d", port)
		case strings.HasPrefix(l, "url: "):
			l = fmt.Sprintf("url: https://localhost:%d", port)
		}
		out = append(out, l)
	}
	path := filepath.Join(c.dir, fmt.Sprintf("pki-%d.yaml", port))
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, fmt.Sprintf("https://localhost:%d", port)
}

// served is one `pki serve` process.
type served struct {
	ready chan struct{} // closed at "pki: serving"
	exit  chan error    // the process's end
	log   *syncBuffer
}

// serve starts `pki serve --config cfg`; it is killed at cleanup.
func (c *binCA) serve(t *testing.T, cfg string) *served {
	t.Helper()
	cmd := exec.Command(c.bin, "serve", "--config", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &served{ready: make(chan struct{}), exit: make(chan error, 1), log: &syncBuffer{}}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		var once sync.Once
		for sc.Scan() {
			s.log.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), "pki: serving") {
				once.Do(func() { close(s.ready) })
			}
		}
	}()
	go func() { <-scanned; s.exit <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.exit
	})
	return s
}

// waitServing waits until s serves, failing if it exits first.
func (s *served) waitServing(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.ready:
	case err := <-s.exit:
		s.exit <- err
		t.Fatalf("%s exited before serving: %v\n%s", what, err, s.log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start within 60s:\n%s", what, s.log.String())
	}
}

// pkiRun runs the pki binary and returns its exit status and combined
// output; it never fails the test by itself.
func pkiRun(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("pki %s: %v", strings.Join(args, " "), err)
	return 0, ""
}

// token mints a token with the pki binary.
func (c *binCA) token(t *testing.T, args ...string) string {
	t.Helper()
	code, out := pkiRun(t, c.bin, append([]string{"token", "--config", c.cfg}, args...)...)
	if code != 0 {
		t.Fatalf("pki token %v: exit %d\n%s", args, code, out)
	}
	return strings.TrimSpace(out)
}
