package testenv

import (
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BuildCommand builds this module's cmd/<name> into a temporary
// directory and returns the executable's path. The Go build cache makes
// every build after the first a link.
func BuildCommand(t testing.TB, name string, tags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	args := []string{"build", "-o", bin}
	for _, tag := range tags {
		args = append(args, "-tags", tag)
	}
	args = append(args, filepath.Join(ModuleRoot(), "cmd", name))
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build cmd/%s: %v\n%s", name, err, out)
	}
	return bin
}

// WaitTCP waits until something accepts connections on addr, and fails
// the test after within. what names the server in the failure.
func WaitTCP(t testing.TB, what, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s is not accepting connections on %s after %s: %v", what, addr, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
