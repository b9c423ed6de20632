// Package testenv starts the real peers that Rampart's integration tests run
// against: network-namespace hosts joined by veth pairs, a throwaway sshd,
// Pebble with pebble-challtestsrv, and PostgreSQL in a temporary directory.
//
// Everything is torn down through t.Cleanup, also when the test fails, and
// every name, port and directory is unique so parallel tests never collide.
//
// Under REQUIRE_INTEGRATION=1 (what .ci/run sets) a test that would skip
// because the machine lacks root, a binary or a kernel feature fails instead:
// CI can never pass on skipped tests. Use [Need], [RequireRoot] and [Binary]
// rather than calling t.Skip directly.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Required reports whether integration tests must run rather than skip.
func Required() bool {
	return os.Getenv("REQUIRE_INTEGRATION") != "" && os.Getenv("REQUIRE_INTEGRATION") != "0"
}

// Need skips the test with reason, or fails it when integration tests are
// required.
func Need(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("integration test cannot run: %s (REQUIRE_INTEGRATION is set, so this fails instead of skipping; run `make test` as root to install what is missing)", reason)
	}
	t.Skipf("skipping integration test: %s", reason)
}

// RequireRoot needs the test to run as root (network namespaces, sshd,
// nftables).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Need(t, "needs root")
	}
}

// Binary returns the path of the named program, looking in PATH, the sbin
// directories, PostgreSQL's Debian directories and the project's tool cache
// (.cache/tools/bin, where test/install.sh puts Pebble and step). A missing
// program is [Need]ed.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if p := LookPath(name); p != "" {
		return p
	}
	Need(t, "program "+name+" not found (test/install.sh installs it)")
	return ""
}

// LookPath is Binary without the test: "" when name is nowhere to be found.
func LookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs := append(ToolsDirs(), "/usr/sbin", "/sbin")
	if pg, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(pg) > 0 {
		dirs = append(dirs, pg[len(pg)-1])
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// ToolsDirs are where test/install.sh may have put the pinned Go tools:
// $TOOLS_DIR, the per-user cache it uses by default
// (~/.cache/rampart/tools/bin), and .cache/tools/bin at the module root.
func ToolsDirs() []string {
	var dirs []string
	if d := os.Getenv("TOOLS_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if c, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(c, "rampart", "tools", "bin"))
	}
	if root := ModuleRoot(); root != "" {
		dirs = append(dirs, filepath.Join(root, ".cache", "tools", "bin"))
	}
	return dirs
}

// ModuleRoot is the directory holding go.mod, found from the working
// directory upwards; "" if none.
func ModuleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// UniqueName returns prefix followed by random hex, short enough for an
// interface name (15 bytes) when prefix is at most 5 bytes.
func UniqueName(prefix string) string {
	var b [5]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// The kernel hands out ephemeral ports in sequence, so two parallel tests
// asking at once get different ports.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
