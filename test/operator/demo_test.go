// Package operator tests Rampart the way a newcomer meets it: `make demo`
// and the commands it prints, the example configs, units and monitoring
// files under examples/, and every binary's command line.
package operator

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// buildAll builds every binary of cmd/ into one directory, as `make build`
// does, with the VCS stamp --version prints; once for all the tests.
func buildAll(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "rampart-operator-bin")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", binDir+"/", "./cmd/...")
		cmd.Dir = testenv.ModuleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/...: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// demoEnv is the environment of a demo on free ports, in its own state
// directory and network namespace, so it runs beside anything else.
func demoEnv(t *testing.T, bin string) []string {
	env := append(os.Environ(),
		"DEMO_BIN="+bin,
		"DEMO_DIR="+t.TempDir(),
		"DEMO_NETNS="+testenv.UniqueName("rdemo"),
	)
	for _, v := range []string{"PKI_PORT", "PKI_METRICS_PORT", "PKI_RENEW_METRICS_PORT",
		"BLOCKLISTD_PORT", "BLOCKLISTD_METRICS_PORT", "AGENT_METRICS_PORT",
		"BASTION_PORT", "BASTION_METRICS_PORT", "BASTION_TARGET_PORT",
		"ACME_PEBBLE_PORT", "ACME_PEBBLE_MGMT_PORT", "ACME_HTTP01_PORT", "ACME_TLSALPN_PORT",
		"ACME_DNS_PORT", "ACME_CHALLSRV_PORT"} {
		env = append(env, fmt.Sprintf("%s=%d", v, testenv.FreePort(t)))
	}
	return env
}

// demo is a running examples/demo/demo.sh.
type demo struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer // stdout and stderr, interleaved
	ready  chan struct{}
	exited chan struct{}
	err    error
}

func (d *demo) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// startDemo runs demo.sh in a process group of its own, as a shell runs a
// foreground job: a signal to the group is what Ctrl-C sends.
func startDemo(t *testing.T, env []string) *demo {
	t.Helper()
	d := &demo{ready: make(chan struct{}), exited: make(chan struct{})}
	d.cmd = exec.Command("bash", filepath.Join(testenv.ModuleRoot(), "examples", "demo", "demo.sh"))
	d.cmd.Env = env
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	d.cmd.Stdout = pw
	d.cmd.Stderr = pw
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start demo.sh: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if sc.Text() == "Ctrl-C stops everything." {
				once.Do(func() { close(d.ready) })
			}
		}
	}()
	go func() {
		d.err = d.cmd.Wait()
		pw.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(10 * time.Second):
				syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			}
		}
		// Whatever the demo left, so that a failed test leaks nothing.
		for _, pid := range startedPIDs(d.output()) {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
	return d
}

var startedRE = regexp.MustCompile(`(?m)^demo: started (\S+) \(pid (\d+),`)

func startedPIDs(out string) []int {
	var pids []int
	for _, m := range startedRE.FindAllStringSubmatch(out, -1) {
		pid, _ := strconv.Atoi(m[2])
		pids = append(pids, pid)
	}
	return pids
}

// printedCommands returns the lines the demo tells the user to try, less
// the hints (lines starting with #).
func printedCommands(out string) []string {
	var cmds []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "Rampart demo is running"):
			in = true
		case line == "Ctrl-C stops everything.":
			in = false
		case in && strings.HasPrefix(line, "  "):
			if c := strings.TrimSpace(line); !strings.HasPrefix(c, "#") {
				cmds = append(cmds, c)
			}
		}
	}
	return cmds
}

func needDemoPeers(t *testing.T) {
	testenv.RequireRoot(t)
	for _, p := range []string{"ip", "nft", "ssh", "sshd", "ssh-keygen", "oathtool", "curl", "openssl", "step", "pebble", "pebble-challtestsrv", "setsid"} {
		testenv.Binary(t, p)
	}
}

// TestDemoAsPrinted runs `make demo`'s script as a newcomer would: starts
// it, pastes the export line and then every printed command into another
// shell (the TOTP code typed from oathtool, through SSH_ASKPASS), and
// presses Ctrl-C. Every command must succeed; Ctrl-C must stop every
// process the demo started and remove its namespace within 5 s.
func TestDemoAsPrinted(t *testing.T) {
	needDemoPeers(t)
	bin := buildAll(t)
	env := demoEnv(t, bin)
	d := startDemo(t, env)
	select {
	case <-d.ready:
	case <-d.exited:
		t.Fatalf("demo.sh exited before printing its commands (%v):\n%s", d.err, d.output())
	case <-time.After(3 * time.Minute):
		t.Fatalf("demo.sh printed no commands within 3 minutes:\n%s", d.output())
	}
	out := d.output()
	first, _, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(first, "export PATH=") || !strings.Contains(first, bin) {
		t.Fatalf("first line %q is not the export PATH line naming %s", first, bin)
	}
	if strings.Contains(out, "skipped") {
		t.Fatalf("a part of the demo was skipped here (every peer is installed):\n%s", out)
	}
	m := regexp.MustCompile(`TOTP secret ([A-Z2-7]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no TOTP secret printed:\n%s", out)
	}
	askpass := filepath.Join(t.TempDir(), "askpass")
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\nexec oathtool --totp -b "+m[1]+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmds := printedCommands(out)
	want := []string{"pki bootstrap", "blocklistd ban", "blocklist-agent status", "ssh -F", "bastion sessions", "bastion replay", "acme-renew check"}
	for _, w := range want {
		found := false
		for _, c := range cmds {
			found = found || strings.HasPrefix(c, w)
		}
		if !found {
			t.Errorf("the demo prints no %q command", w)
		}
	}
	userEnv := append(env, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=")
	for i, c := range cmds {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		sh := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", first+"\n"+c)
		sh.Env = userEnv
		sh.Stdin = nil
		res, err := sh.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("printed command %d failed (%v):\n  %s\n%s", i+1, err, c, res)
		} else {
			t.Logf("ok: %s", c)
		}
	}
	envOf := func(k string) string {
		for _, e := range env {
			if v, ok := strings.CutPrefix(e, k+"="); ok {
				return v
			}
		}
		return ""
	}
	t.Run("monitoring metrics exposed", func(t *testing.T) {
		var urls []string
		for _, p := range []string{"PKI_METRICS_PORT", "PKI_RENEW_METRICS_PORT", "BLOCKLISTD_METRICS_PORT", "AGENT_METRICS_PORT", "BASTION_METRICS_PORT"} {
			urls = append(urls, "http://127.0.0.1:"+envOf(p)+"/metrics")
		}
		demoDir := envOf("DEMO_DIR")
		checkExposed(t, urls, []string{filepath.Join(demoDir, "pki-blocklistd.prom"), filepath.Join(demoDir, "acme", "acme.prom")})
	})
	pids := startedPIDs(out)
	if len(pids) < 6 {
		t.Fatalf("the demo names %d started processes; want every piece:\n%s", len(pids), out)
	}
	// Ctrl-C: SIGINT to the foreground process group (the script and its
	// sleep); the daemons are in sessions of their own.
	start := time.Now()
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("demo.sh still running 5 s after Ctrl-C:\n%s", d.output())
	}
	took := time.Since(start)
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("pid %d started by the demo is still alive after Ctrl-C", pid)
		}
	}
	ns := envOf("DEMO_NETNS")
	if list, _ := exec.Command("ip", "netns", "list").Output(); regexp.MustCompile(`(?m)^` + ns + `\b`).Match(list) {
		exec.Command("ip", "netns", "del", ns).Run()
		t.Errorf("namespace %s left after Ctrl-C", ns)
	}
	t.Logf("%d printed commands ran; Ctrl-C stopped %d processes in %s", len(cmds), len(pids), took.Round(10*time.Millisecond))
}

// TestDemoNamesTheDeadDaemon takes the agent's metrics port before the
// demo starts: the demo must not print its commands, but stop, naming
// blocklist-agent and the last line of its log.
func TestDemoNamesTheDeadDaemon(t *testing.T) {
	needDemoPeers(t)
	bin := buildAll(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := append(demoEnv(t, bin), "DEMO_PARTS=10 20 25", "AGENT_METRICS_PORT="+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	d := startDemo(t, env)
	select {
	case <-d.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("demo.sh still running with its agent dead:\n%s", d.output())
	}
	out := d.output()
	if d.err == nil {
		t.Errorf("demo.sh exited 0 with its agent dead")
	}
	if strings.Contains(out, "Ctrl-C stops everything.") {
		t.Errorf("demo.sh printed its commands with its agent dead:\n%s", out)
	}
	if !regexp.MustCompile(`demo: blocklist-agent \(pid \d+\) has exited: .*address already in use`).MatchString(out) {
		t.Errorf("demo.sh does not name blocklist-agent and its last log line (address already in use):\n%s", out)
	}
}
