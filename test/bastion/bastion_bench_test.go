package bastion_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/mfa"
	"github.com/rampart-sec/rampart/test/testenv"
)

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkLoginLatency: OpenSSH logging in (key + TOTP) and running
// "true" through the bastion, against the same login straight to the
// sshd. Target: median added ≤ 50 ms.
func BenchmarkLoginLatency(b *testing.B) {
	const samples = 9
	var users []*bstUser
	for i := range samples {
		users = append(users, &bstUser{Name: fmt.Sprintf("lat%d", i)})
	}
	w := bstNewWorld(b, bstSetup{Users: users})
	// Warm up both paths (page cache, sshd's first fork).
	w.ssh("", "target", "true")
	var direct, jump, sshdJump []time.Duration
	for i := range samples {
		// Reference: OpenSSH's own jump host (the sshd jumping to itself),
		// key only. What the bastion adds beyond that is its own cost.
		t0 := time.Now()
		if r := w.ssh("", "-J", "target", "target", "true"); r.Err != nil {
			b.Fatalf("login through sshd as jump host: %v\n%s", r.Err, r.Out)
		}
		sshdJump = append(sshdJump, time.Since(t0))
		t0 = time.Now()
		if r := w.ssh("", "target", "true"); r.Err != nil {
			b.Fatalf("direct login: %v\n%s", r.Err, r.Out)
		}
		direct = append(direct, time.Since(t0))
		name := users[i].Name
		code := w.totp(name) // the code is typed before the clock starts
		t0 = time.Now()
		if r := w.ssh(code, "-J", name+"@bastion", "target", "true"); r.Err != nil {
			b.Fatalf("login through the bastion: %v\n%s", r.Err, r.Out)
		}
		jump = append(jump, time.Since(t0))
	}
	md, mj := median(direct), median(jump)
	b.ReportMetric(float64(md.Microseconds())/1000, "direct-median-ms")
	b.ReportMetric(float64(mj.Microseconds())/1000, "bastion-median-ms")
	b.ReportMetric(float64((mj-md).Microseconds())/1000, "added-median-ms")
	b.ReportMetric(float64(median(sshdJump).Microseconds())/1000, "sshd-jump-median-ms")
}

// BenchmarkJumpThroughput: 1 GiB through "ssh -J" against the same
// transfer straight to the sshd, both with the real OpenSSH client.
// Target: ≥ 90 % of direct.
func BenchmarkJumpThroughput(b *testing.B) {
	const size = 1 << 30
	w := bstNewWorld(b, bstSetup{Users: []*bstUser{{Name: "bulk"}}})
	run := func(args ...string) time.Duration {
		ans := filepath.Join(w.Dir, "bulk-answer")
		code := ""
		if slices.Contains(args, "-J") {
			code = w.totp("bulk")
		}
		os.WriteFile(ans, []byte(code+"\n"), 0o600)
		cmd := exec.Command(testenv.Binary(b, "ssh"), append(append([]string{"-F", w.SSHConfig, "-o", "Ciphers=aes128-gcm@openssh.com"}, args...), "target", "cat >/dev/null")...)
		cmd.Env = append(os.Environ(), "SSH_ASKPASS="+filepath.Join(w.Dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0",
			"BST_ANSWER="+ans, "BST_ASKPASS_LOG=/dev/null")
		stdin, _ := cmd.StdinPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := stdin.Write(buf); err != nil {
				b.Fatalf("write: %v\n%s", err, stderr.String())
			}
		}
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatalf("ssh %v: %v\n%s", args, err, stderr.String())
		}
		return time.Since(t0)
	}
	direct := run()
	// The bastion runs in this process, which does little else meanwhile:
	// its CPU time is the bastion's cost of relaying the GiB.
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	jump := run("-J", "bulk@bastion")
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	mib := float64(size) / (1 << 20)
	b.ReportMetric(mib/direct.Seconds(), "direct-MiB/s")
	b.ReportMetric(mib/jump.Seconds(), "bastion-MiB/s")
	b.ReportMetric(100*direct.Seconds()/jump.Seconds(), "bastion-%-of-direct")
	b.ReportMetric(cpu.Seconds(), "bastion-CPU-s/GiB")
}

// BenchmarkIdleJumpSessions: 500 clients each hold a jump channel open
// to an idle TCP target; the bastion runs as its own process so its RSS
// is its own. Target: ≤ 1 MB per session.
func BenchmarkIdleJumpSessions(b *testing.B) {
	const n = 500
	testenv.RequireRoot(b)
	dir := b.TempDir()
	bin := filepath.Join(dir, "bastion")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/bastion").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	// The idle target: accepts and holds.
	target, _ := net.Listen("tcp", "127.0.0.1:0")
	defer target.Close()
	var held []net.Conn
	var hmu sync.Mutex
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			hmu.Lock()
			held = append(held, c)
			hmu.Unlock()
		}
	}()
	defer func() {
		hmu.Lock()
		for _, c := range held {
			c.Close()
		}
		hmu.Unlock()
	}()
	userKey := bstKey(b, filepath.Join(dir, "id"))
	pub := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(userKey.PublicKey())))
	port := testenv.FreePort(b)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "listen: 127.0.0.1:%d\nstate_dir: state\nbrute_force: {report_threshold: -1}\nusers:\n", port)
	for i := range n {
		fmt.Fprintf(&cfg, "  idle%d: {keys: [%q], targets: [%q]}\n", i, pub, target.Addr().String())
	}
	os.WriteFile(filepath.Join(dir, "bastion.yaml"), []byte(cfg.String()), 0o600)
	store, _ := mfa.NewTOTPStore(filepath.Join(dir, "state", "totp"), nil)
	secret := bstSecret()
	for i := range n {
		store.SetSecret(fmt.Sprintf("idle%d", i), secret)
	}
	srv := exec.Command(bin, "serve", "--config", filepath.Join(dir, "bastion.yaml"))
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			b.Fatal("bastion did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	code, _ := totp.GenerateCode(secret, time.Now())
	login := func(user string) (*gossh.Client, error) {
		ki := gossh.KeyboardInteractive(func(_, _ string, q []string, _ []bool) ([]string, error) {
			a := make([]string, len(q))
			for i := range a {
				a[i] = code
			}
			return a, nil
		})
		return gossh.Dial("tcp", addr, &gossh.ClientConfig{User: user, Auth: []gossh.AuthMethod{gossh.PublicKeys(userKey), ki},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
	}
	// Baseline: one session open, so lazily built state is counted once.
	c0, err := login("idle0")
	if err != nil {
		b.Fatal(err)
	}
	ch0, err := c0.Dial("tcp", target.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	before := rssKB(b, srv.Process.Pid)
	clients := []*gossh.Client{c0}
	conns := []net.Conn{ch0}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := login(fmt.Sprintf("idle%d", i))
			if err != nil {
				errs <- err
				return
			}
			cc, err := c.Dial("tcp", target.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			clients, conns = append(clients, c), append(conns, cc)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("opening sessions: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	after := rssKB(b, srv.Process.Pid)
	b.ReportMetric(float64(after-before)/float64(n-1), "KB-RSS/session")
	b.ReportMetric(float64(after)/1024, "MB-RSS-total")
	for _, c := range conns {
		c.Close()
	}
	for _, c := range clients {
		c.Close()
	}
}

func rssKB(b *testing.B, pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return kb
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkLoginLatencyGoClient is BenchmarkLoginLatency without the
// OpenSSH processes: an x/crypto client authenticates (key + TOTP) to the
// bastion, opens the jump channel and authenticates to the sshd through
// it, against the same client authenticating to the sshd directly. What
// is left is the bastion's own cost plus one more SSH handshake.
func BenchmarkLoginLatencyGoClient(b *testing.B) {
	const samples = 15
	var users []*bstUser
	for i := range samples {
		users = append(users, &bstUser{Name: fmt.Sprintf("go%d", i)})
	}
	w := bstNewWorld(b, bstSetup{Users: users})
	targetCfg := &gossh.ClientConfig{User: w.TargetUser, Auth: []gossh.AuthMethod{gossh.PublicKeys(w.Key)},
		HostKeyCallback: gossh.FixedHostKey(w.Target.HostKey), HostKeyAlgorithms: []string{gossh.KeyAlgoED25519}, Timeout: 30 * time.Second}
	var direct, jump []time.Duration
	for i := range samples {
		t0 := time.Now()
		c, err := gossh.Dial("tcp", w.Target.Addr, targetCfg)
		if err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(t0))
		c.Close()

		u := users[i]
		code, _ := totp.GenerateCode(u.Secret, time.Now())
		ki := gossh.KeyboardInteractive(func(_, _ string, q []string, _ []bool) ([]string, error) {
			a := make([]string, len(q))
			for i := range a {
				a[i] = code
			}
			return a, nil
		})
		t0 = time.Now()
		bc, err := gossh.Dial("tcp", w.Addr, &gossh.ClientConfig{User: u.Name, Auth: []gossh.AuthMethod{gossh.PublicKeys(w.Key), ki},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		conn, err := bc.Dial("tcp", w.Target.Addr)
		if err != nil {
			b.Fatal(err)
		}
		sc, chans, reqs, err := gossh.NewClientConn(conn, w.Target.Addr, targetCfg)
		if err != nil {
			b.Fatal(err)
		}
		jump = append(jump, time.Since(t0))
		gossh.NewClient(sc, chans, reqs).Close()
		bc.Close()
	}
	md, mj := median(direct), median(jump)
	b.ReportMetric(float64(md.Microseconds())/1000, "direct-median-ms")
	b.ReportMetric(float64(mj.Microseconds())/1000, "bastion-median-ms")
	b.ReportMetric(float64((mj-md).Microseconds())/1000, "added-median-ms")
}
