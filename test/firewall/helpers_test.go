// Package firewall_test holds the end-to-end tests of Rampart's
// enforcement: the real blocklist-agent binary against the kernel's
// nftables in fresh network namespaces (packet path, crash in the middle
// of a replace), and the million-entry benchmark that `make bench` runs.
package firewall_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall/nftables"
	"github.com/rampart-sec/rampart/test/testenv"
)

var (
	agentOnce sync.Once
	agentDir  string
	agentPath string
	agentErr  error
)

// agent returns a blocklist-agent binary built from this tree for this
// run, so tests never run a stale bin/.
func agent(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() {
		root := testenv.ModuleRoot()
		agentDir, agentErr = os.MkdirTemp("", "rampart-agent")
		if agentErr != nil {
			return
		}
		agentPath = filepath.Join(agentDir, "blocklist-agent")
		cmd := exec.Command("go", "build", "-trimpath", "-o", agentPath, "./cmd/blocklist-agent")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = &buildError{err, string(out)}
		}
	})
	if agentErr != nil {
		t.Fatalf("build blocklist-agent: %v", agentErr)
	}
	return agentPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if agentDir != "" {
		os.RemoveAll(agentDir)
	}
	os.Exit(code)
}

// current reads what the kernel enforces in h, through the library.
func current(t testing.TB, h *testenv.Host) *netipx.IPSet {
	t.Helper()
	b, err := nftables.New(nftables.Options{NetNS: h.Path()})
	if err != nil {
		t.Fatal(err)
	}
	set, err := b.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func writeFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// benchAgent is the binary benchmarks measure: bin/blocklist-agent, which
// `make bench` builds just before, or else agent.
func benchAgent(b *testing.B) string {
	if p := filepath.Join(testenv.ModuleRoot(), "bin", "blocklist-agent"); fileExists(p) {
		return p
	}
	return agent(b)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

var (
	pfctlOnce sync.Once
	pfctlPath string
	pfctlErr  error
)

// fakePfctl builds firewall/pf/testdata/fakepfctl once.
func fakePfctl(t testing.TB) string {
	t.Helper()
	agent(t) // creates agentDir
	pfctlOnce.Do(func() {
		pfctlPath = filepath.Join(agentDir, "pfctl")
		cmd := exec.Command("go", "build", "-o", pfctlPath, "./firewall/pf/testdata/fakepfctl")
		cmd.Dir = testenv.ModuleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			pfctlErr = &buildError{err, string(out)}
		}
	})
	if pfctlErr != nil {
		t.Fatalf("build fake pfctl: %v", pfctlErr)
	}
	return pfctlPath
}
