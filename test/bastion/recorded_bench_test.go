package bastion_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
	"github.com/rampart-sec/rampart/test/testenv"
)

// recProcCPU returns a process's CPU time (user+system) including that of
// its waited-for children.
func recProcCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the ")" of comm: state is field 3; utime 14, stime 15,
	// cutime 16, cstime 17 (1-based).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	var ticks int64
	for _, i := range []int{14, 15, 16, 17} {
		v, _ := strconv.ParseInt(f[i-3], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

// recProcRSS returns a process's resident set in bytes.
func recProcRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// recSSHDPid finds the sshd listener started for s.
func recSSHDPid(tb testing.TB, s *recSSHD) int {
	tb.Helper()
	conf := filepath.Join(s.Dir, "sshd_config")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmd, []byte(conf)) && bytes.Contains(cmd, []byte("-D")) {
			if ppid := recPPid(pid); ppid > 0 {
				if pc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid)); bytes.Contains(pc, []byte(conf)) {
					continue // a per-connection child
				}
			}
			return pid
		}
	}
	tb.Fatal("sshd process not found")
	return 0
}

func recPPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// recWaitNoChildren waits until pid has no children left (so their CPU
// time has been added to its cutime/cstime).
func recWaitNoChildren(tb testing.TB, pid int) {
	tb.Helper()
	recWaitFor(tb, "sshd's session processes to exit", 30*time.Second, func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if p, err := strconv.Atoi(e.Name()); err == nil && recPPid(p) == pid {
				return false
			}
		}
		return true
	})
}

// A recorded `cat` of 200 MB through the proxy: the proxy's CPU seconds per
// GB against the target sshd's in the same run (goal: at most 2x).
func BenchmarkRecordedCat200MB(b *testing.B) {
	w := recNewWorld(b, nil)
	cfg := w.cfg
	cfg.Dir = filepath.Join(b.TempDir(), "recordings")
	cfg.NoSync = os.Getenv("RAMPART_RECORDED_NOSYNC") != ""
	cfg.Ciphers = []string{"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"}
	cfg.CPUProfile = os.Getenv("RAMPART_RECORDED_CPUPROFILE")
	addr, child := recStartChild(b, cfg)
	sshdPid := recSSHDPid(b, w.sshd)

	const size = 200 << 20
	src := filepath.Join(recSharedDir(b), "200MB.txt")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	line := []byte("0123456789 the quick brown fox jumps over the lazy dog; ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmn\n")
	for n := 0; n < size; n += len(line) {
		bw.Write(line)
	}
	bw.Flush()
	f.Close()

	ssh := testenv.Binary(b, "ssh")
	var proxyCPU, sshdCPU time.Duration
	var total int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p0, s0 := recProcCPU(b, child.Process.Pid), recProcCPU(b, sshdPid)
		cmd := exec.Command(ssh, append(w.sshArgs(addr, "-c", "aes128-gcm@openssh.com"), "cat "+src)...)
		var n countWriter
		cmd.Stdout = &n
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("ssh cat: %v\n%s", err, stderr.String())
		}
		if n.n < size {
			b.Fatalf("received %d bytes, want %d", n.n, size)
		}
		recWaitNoChildren(b, sshdPid)
		proxyCPU += recProcCPU(b, child.Process.Pid) - p0
		sshdCPU += recProcCPU(b, sshdPid) - s0
		total += n.n
	}
	b.StopTimer()
	if cfg.CPUProfile != "" {
		child.Process.Signal(syscall.SIGTERM)
		child.Wait()
	}
	gb := float64(total) / (1 << 30)
	b.ReportMetric(proxyCPU.Seconds()/gb, "proxy-cpu-s/GB")
	b.ReportMetric(sshdCPU.Seconds()/gb, "sshd-cpu-s/GB")
	b.ReportMetric(proxyCPU.Seconds()/sshdCPU.Seconds(), "proxy/sshd")
	b.SetBytes(total / int64(b.N))
	casts := recCasts(b, cfg.Dir)
	if len(casts) != b.N {
		b.Fatalf("%d recordings for %d sessions", len(casts), b.N)
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// 200 concurrent recorded sessions printing steadily: the proxy's resident
// memory per session (goal: at most 2 MB) and no lost events (every line
// printed is in the client's output and in the recording, in order).
func BenchmarkRecorded200Sessions(b *testing.B) {
	const sessions, lines = 200, 40
	w := recNewWorld(b, nil)
	cfg := w.cfg
	cfg.Dir = filepath.Join(b.TempDir(), "recordings")
	cfg.AuditPath = filepath.Join(b.TempDir(), "audit.jsonl")
	addr, child := recStartChild(b, cfg)
	key, err := os.ReadFile(w.keys.clientKey)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	ccfg := &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: time.Minute}
	script := fmt.Sprintf(`perl -e '$|=1; for (1..%d) { print "line-$_\n"; select(undef,undef,undef,0.25) }'`, lines)

	for i := 0; i < b.N; i++ {
		base := recProcRSS(b, child.Process.Pid)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		var wg sync.WaitGroup
		outs := make([]string, sessions)
		errs := make([]error, sessions)
		for s := 0; s < sessions; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := gossh.Dial("tcp", addr, ccfg)
				if err != nil {
					errs[s] = err
					return
				}
				defer c.Close()
				sess, err := c.NewSession()
				if err != nil {
					errs[s] = err
					return
				}
				out, err := sess.Output(script)
				outs[s], errs[s] = string(out), err
			}()
			time.Sleep(10 * time.Millisecond) // a steady stream of logins, not a thundering herd
		}
		var peak int64
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
	sample:
		for {
			select {
			case <-done:
				break sample
			case <-ctx.Done():
				b.Fatal("sessions did not finish")
			case <-time.After(200 * time.Millisecond):
				peak = max(peak, recProcRSS(b, child.Process.Pid))
			}
		}
		cancel()
		var want strings.Builder
		for l := 1; l <= lines; l++ {
			fmt.Fprintf(&want, "line-%d\n", l)
		}
		for s := 0; s < sessions; s++ {
			if errs[s] != nil || outs[s] != want.String() {
				b.Fatalf("session %d: %v, output %q", s, errs[s], recTail(outs[s], 100))
			}
		}
		recWaitFor(b, "all sessions' end events", time.Minute, func() bool {
			a, _ := os.ReadFile(cfg.AuditPath)
			return bytes.Count(a, []byte(`"recorded.end"`)) >= sessions*(i+1)
		})
		casts := recCasts(b, cfg.Dir)
		lost := 0
		for _, c := range casts {
			lost += recLostLines(b, c, want.String())
		}
		b.ReportMetric(float64(peak)/sessions/(1<<20), "MB-RSS/session")
		b.ReportMetric(float64(peak-base)/sessions/(1<<20), "MB-RSS-delta/session")
		b.ReportMetric(float64(lost), "lost-events")
		if lost > 0 || len(casts) != sessions*(i+1) {
			b.Fatalf("%d recordings, %d with lost output", len(casts), lost)
		}
	}
}

// recLostLines reports 1 if the recording lacks any of want's lines or has
// them out of order. Other output (the target's login scripts may write
// to stderr, which is recorded too) is ignored.
func recLostLines(tb testing.TB, path, want string) int {
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	rd, err := asciicast.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	var got strings.Builder
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		got.WriteString(ev.Data)
	}
	rest := got.String()
	for _, l := range strings.SplitAfter(want, "\n") {
		i := strings.Index(rest, l)
		if i < 0 {
			tb.Logf("%s: recording lacks %q in order", filepath.Base(path), l)
			return 1
		}
		rest = rest[i+len(l):]
	}
	return 0
}
