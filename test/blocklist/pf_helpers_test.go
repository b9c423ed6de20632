package blocklist_test

// The pf rig: blocklistd on loopback, blocklist-agent configured for the
// pf backend, and firewall/pf/testdata/fakepfctl standing in for pfctl
// (pf does not run on Linux). The fake keeps each table as a file under
// its directory and logs every command line, followed by the entries of
// the file it loaded, so the test reads both what pf would enforce and
// which table commands the agent ran.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/agent"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/test/testenv"
)

// pfTable is the table pf.conf declares for Rampart in the rig.
const pfTable = "rampart"

// pfRig is one blocklistd, one pf-backed agent and the fake pf.
type pfRig struct {
	t                 *testing.T
	dir, pki          string
	blocklistd, agent string
	// pfDir is the fake's state ($FAKEPFCTL_DIR); pfctl the wrapper the
	// agent runs, which fails table changes while pfDir/fail exists.
	pfDir, pfctl string
	listen       string
	serverCfg    string
	server       *exec.Cmd
	agentCfg     string
	state        string
	proc         *pfAgentProc
}

func newPFRig(t *testing.T) *pfRig {
	t.Helper()
	r := &pfRig{t: t, dir: t.TempDir()}
	r.blocklistd, r.agent = fleetBinaries(t)
	fake := filepath.Join(t.TempDir(), "fakepfctl")
	build := exec.Command("go", "build", "-o", fake, "./firewall/pf/testdata/fakepfctl")
	build.Dir = testenv.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fake pfctl: %v\n%s", err, out)
	}
	r.pfDir = filepath.Join(r.dir, "pf")
	// pf.conf declares `table <rampart> persist`: the table exists, empty.
	if err := os.MkdirAll(filepath.Join(r.pfDir, "tables"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFleetFile(t, filepath.Join(r.pfDir, "tables", pfTable), "")
	r.pfctl = filepath.Join(r.dir, "pfctl")
	// A table change that pf refuses fails with pfctl's message and
	// changes nothing, as the DIOCR* ioctls do.
	script := fmt.Sprintf(`#!/bin/sh
case " $* " in
*" -T add "*|*" -T delete "*|*" -T replace "*|*" -T flush "*)
	if [ -e "$FAKEPFCTL_DIR/fail" ]; then
		echo "FAILED pfctl $*" >>"$FAKEPFCTL_DIR/log"
		echo "pfctl: Operation not permitted." >&2
		exit 1
	fi
esac
exec %s "$@"
`, fake)
	if err := os.WriteFile(r.pfctl, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	r.pki = filepath.Join(r.dir, "pki")
	if err := server.WriteDevCerts(r.pki, []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	r.listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	r.serverCfg = filepath.Join(r.dir, "blocklistd.yaml")
	writeFleetFile(t, r.serverCfg, fmt.Sprintf(`listen: %s
tls: {cert: %s, key: %s, client_ca: %s}
store: {driver: bolt, path: %s}
sync: {max_wait: 20s}
cli: {cert: %s, key: %s}
`, r.listen, r.file("blocklistd.pem"), r.file("blocklistd-key.pem"), r.file("ca.pem"),
		filepath.Join(r.dir, "blocklistd.db"), r.file("admin.pem"), r.file("admin-key.pem")))

	r.state = filepath.Join(r.dir, "agent-state")
	r.agentCfg = filepath.Join(r.dir, "agent.yaml")
	writeFleetFile(t, r.agentCfg, fmt.Sprintf(`server:
  url: https://%s
  ca: %s
  cert: %s
  key: %s
  wait: 20s
  backoff_min: 100ms
  backoff_max: 500ms
firewall: {backend: pf, table: %s, pfctl: %s, kill_states: true}
state_dir: %s
log_level: debug
`, r.listen, r.file("ca.pem"), r.file("agent.pem"), r.file("agent-key.pem"), pfTable, r.pfctl, r.state))
	return r
}

func (r *pfRig) file(name string) string { return filepath.Join(r.pki, name) }

func (r *pfRig) startServer() {
	r.t.Helper()
	r.server, _ = startDaemon(r.t, r.blocklistd, r.serverCfg, r.listen)
}

func (r *pfRig) stopServer() {
	r.t.Helper()
	stopDaemon(r.t, r.server)
}

// admin runs a blocklistd admin verb (ban, unban) against the daemon.
func (r *pfRig) admin(args ...string) {
	r.t.Helper()
	out, err := exec.Command(r.blocklistd, append(args, "--config", r.serverCfg)...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("blocklistd %v: %v\n%s", args, err, out)
	}
}

// setFail makes the pfctl wrapper refuse table changes (on) or pass them
// to the fake again (off).
func (r *pfRig) setFail(on bool) {
	r.t.Helper()
	path := filepath.Join(r.pfDir, "fail")
	if on {
		writeFleetFile(r.t, path, "")
	} else if err := os.Remove(path); err != nil {
		r.t.Fatal(err)
	}
}

// pfAgentProc is a running `blocklist-agent run`.
type pfAgentProc struct {
	cmd  *exec.Cmd
	log  *fleetLog
	done chan struct{}
	err  error
}

func (r *pfRig) startAgent() {
	r.t.Helper()
	p := &pfAgentProc{log: &fleetLog{}, done: make(chan struct{})}
	p.cmd = exec.Command(r.agent, "run", "--config", r.agentCfg)
	p.cmd.Env = append(os.Environ(), "FAKEPFCTL_DIR="+r.pfDir)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		r.t.Fatalf("start blocklist-agent: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t := r.t
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- blocklist-agent output:\n%s", p.log)
		}
	})
	r.proc = p
}

// stopAgent sends SIGTERM and waits for a clean exit.
func (r *pfRig) stopAgent() {
	r.t.Helper()
	p := r.proc
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		r.t.Fatalf("blocklist-agent did not stop on SIGTERM:\n%s", p.log)
	}
	if p.err != nil {
		r.t.Fatalf("blocklist-agent exited with %v after SIGTERM:\n%s", p.err, p.log)
	}
}

// table returns what pf would enforce: the fake's table file, sorted.
func (r *pfRig) table() []string {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.pfDir, "tables", pfTable))
	if err != nil {
		r.t.Fatalf("pf table <%s>: %v (was it destroyed?)", pfTable, err)
	}
	out := strings.Fields(string(data))
	slices.Sort(out)
	return out
}

// waitTable polls until the table holds exactly want.
func (r *pfRig) waitTable(what string, want ...string) {
	r.t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Equal(r.table(), want) {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: pf table holds %v after 30s, want %v\npfctl log:\n%s", what, r.table(), want, r.rawLog())
		}
		if r.proc != nil {
			select {
			case <-r.proc.done:
				r.t.Fatalf("%s: blocklist-agent exited: %v\n%s", what, r.proc.err, r.proc.log)
			default:
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pfOp is one table command the fake ran (or the wrapper refused), or
// a kill of a source's states.
type pfOp struct {
	verb    string // add, delete, replace, flush, show, kill; "FAILED add" etc.
	entries []string
}

func (o pfOp) String() string { return o.verb + " " + strings.Join(o.entries, " ") }

// modifies says whether the command changes a table or kills states.
func (o pfOp) modifies() bool { return o.verb != "show" && !strings.HasPrefix(o.verb, "FAILED") }

func (r *pfRig) rawLog() string {
	data, err := os.ReadFile(filepath.Join(r.pfDir, "log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		r.t.Fatal(err)
	}
	return string(data)
}

// ops parses the fake's log into the table commands run on pfTable and
// the state kills; -s lines are left out.
func (r *pfRig) ops() []pfOp {
	r.t.Helper()
	var ops []pfOp
	log := r.rawLog()
	log = log[:strings.LastIndexByte(log, '\n')+1] // a line being written
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "\t") {
			if len(ops) > 0 {
				ops[len(ops)-1].entries = append(ops[len(ops)-1].entries, strings.TrimSpace(line))
			}
			continue
		}
		rest, failed := strings.CutPrefix(line, "FAILED ")
		f := strings.Fields(rest)
		if len(f) == 3 && f[1] == "-k" {
			ops = append(ops, pfOp{verb: "kill", entries: []string{f[2]}})
			continue
		}
		i := slices.Index(f, "-T")
		if i < 0 || i+1 >= len(f) {
			continue
		}
		if t := slices.Index(f, "-t"); t < 0 || t+1 >= len(f) || f[t+1] != pfTable {
			r.t.Fatalf("pfctl command on another table: %s", line)
		}
		op := pfOp{verb: f[i+1]}
		if failed {
			op.verb = "FAILED " + op.verb
		}
		ops = append(ops, op)
	}
	for i := range ops {
		slices.Sort(ops[i].entries)
	}
	return ops
}

// changesSince returns the commands after the first n that changed the
// table or killed states (refused ones and reads left out).
func (r *pfRig) changesSince(n int) []pfOp {
	var out []pfOp
	for _, o := range r.ops()[n:] {
		if o.modifies() {
			out = append(out, o)
		}
	}
	return out
}

// wantChanges waits until the commands after the first n that changed
// the table or killed states are exactly want (each "verb entry...",
// entries sorted). It polls because the fake may be writing its log: a
// command line comes before the entries it loads. A command too many
// stays in the log, so it fails at the deadline.
func (r *pfRig) wantChanges(what string, n int, want ...string) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []string
		for _, o := range r.changesSince(n) {
			got = append(got, o.String())
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: pfctl changed the table with %q, want %q\npfctl log:\n%s", what, got, want, r.rawLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// status is agentStatus for the rig's agent.
func (r *pfRig) status() (agent.Status, bool) {
	r.t.Helper()
	return agentStatus(r.t, r.agent, r.agentCfg)
}

// waitStatus is waitAgentStatus for the rig's agent.
func (r *pfRig) waitStatus(what string, cond func(agent.Status, bool) bool) agent.Status {
	r.t.Helper()
	return waitAgentStatus(r.t, r.agent, r.agentCfg, what, cond, func() string { return "agent output:\n" + r.proc.log.String() })
}
