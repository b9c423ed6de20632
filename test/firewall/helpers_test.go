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

// agent returns the blocklist-agent binary: bin/blocklist-agent when
// `make build` made it (make bench does), else one built for this run.
func agent(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() {
		root := testenv.ModuleRoot()
		if p := filepath.Join(root, "bin", "blocklist-agent"); os.Getenv("RAMPART_USE_BIN") != "" {
			if _, err := os.Stat(p); err == nil {
				agentPath = p
				return
			}
		}
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
