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
//
// Also reported: OpenSSH's own sshd as the jump host (key only), and the
// bastion leg alone ("ssh alice@bastion": key, TOTP, the menu, exit),
// which is the bastion's own part of a jump.
func BenchmarkLoginLatency(b *testing.B) {
	const samples = 9
	var jumpers, legs []*bstUser
	for i := range samples {
		jumpers = append(jumpers, &bstUser{Name: fmt.Sprintf("lat%d", i)})
		legs = append(legs, &bstUser{Name: fmt.Sprintf("leg%d", i)})
	}
	// Each login uses its own user: a TOTP code is never accepted twice.
	w := bstNewWorld(b, bstSetup{Users: append(jumpers, legs...), Process: true})
	// Warm up both paths (page cache, sshd's first fork).
	w.ssh("", "target", "true")
	var direct, jump, sshdJump, leg []time.Duration
	timed := func(into *[]time.Duration, what, code string, args ...string) {
		t0 := time.Now()
		r := w.ssh(code, args...)
		d := time.Since(t0)
		if r.Err != nil {
			b.Fatalf("%s: %v\n%s", what, r.Err, r.Out)
		}
		*into = append(*into, d)
	}
	for i := range samples {
		timed(&sshdJump, "login through sshd as jump host", "", "-J", "target", "target", "true")
		timed(&direct, "direct login", "", "target", "true")
		// Codes are computed before the clock starts: typing is not timed.
		code := w.totp(jumpers[i].Name)
		timed(&jump, "login through the bastion", code, "-J", jumpers[i].Name+"@bastion", "target", "true")
		code = w.totp(legs[i].Name)
		timed(&leg, "login to the bastion", code, legs[i].Name+"@bastion")
	}
	md, mj := median(direct), median(jump)
	b.ReportMetric(float64(md.Microseconds())/1000, "direct-median-ms")
	b.ReportMetric(float64(mj.Microseconds())/1000, "bastion-median-ms")
	b.ReportMetric(float64((mj-md).Microseconds())/1000, "added-median-ms")
	b.ReportMetric(float64(median(sshdJump).Microseconds())/1000, "sshd-jump-median-ms")
	b.ReportMetric(float64(median(leg).Microseconds())/1000, "bastion-leg-median-ms")
}

// BenchmarkJumpThroughput: 1 GiB through "ssh -J" against the same
// transfer straight to the sshd, both with the real OpenSSH client and
// the same cipher on every hop. Target: ≥ 90 % of direct.
//
// The bastion is the real "bastion serve" process. OpenSSH's own sshd as
// the jump host runs in the same rounds as the reference for what any
// jump host costs here. Every path runs three times, interleaved, and
// the medians are reported, with the CPU time the whole machine spent
// per GiB (client, jump host, sshd and cat share the same two cores, so
// a jump's extra CPU work shows up as lost throughput).
func BenchmarkJumpThroughput(b *testing.B) {
	const size = 1 << 30
	const rounds = 3
	var users []*bstUser
	for i := range rounds {
		users = append(users, &bstUser{Name: fmt.Sprintf("bulk%d", i)})
	}
	w := bstNewWorld(b, bstSetup{Users: users, Process: true, JumpHost: true})
	headBin := testenv.Binary(b, "head")
	type sample struct{ wall, machineCPU, bastionCPU, jumpHostCPU time.Duration }
	run := func(code string, args ...string) sample {
		ans := filepath.Join(w.Dir, "bulk-answer")
		os.WriteFile(ans, []byte(code+"\n"), 0o600)
		// The bytes come from head(1), so that feeding them costs this
		// process nothing.
		pr, pw, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		feed := exec.Command(headBin, "-c", strconv.Itoa(size), "/dev/zero")
		feed.Stdout = pw
		cmd := exec.Command(testenv.Binary(b, "ssh"), append(append([]string{"-F", w.SSHConfig, "-o", "Ciphers=aes128-gcm@openssh.com"}, args...), "target", "cat >/dev/null")...)
		cmd.Env = append(os.Environ(), "SSH_ASKPASS="+filepath.Join(w.Dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0",
			"BST_ANSWER="+ans, "BST_ASKPASS_LOG=/dev/null")
		cmd.Stdin = pr
		var stderr strings.Builder
		cmd.Stderr = &stderr
		cpu0, bcpu0 := machineCPU(b), procCPU(b, w.Pid)
		jump := sampleTree(b, w.JumpHost.Pid)
		t0 := time.Now()
		if err := feed.Start(); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pr.Close()
		pw.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatalf("ssh %v: %v\n%s", args, err, stderr.String())
		}
		wall := time.Since(t0)
		if err := feed.Wait(); err != nil {
			b.Fatalf("head: %v", err)
		}
		return sample{wall, machineCPU(b) - cpu0, procCPU(b, w.Pid) - bcpu0, jump()}
	}
	var direct, bastion, sshdJump []sample
	for i := range rounds {
		direct = append(direct, run(""))
		bastion = append(bastion, run(w.totp(users[i].Name), "-J", users[i].Name+"@bastion"))
		sshdJump = append(sshdJump, run("", "-J", "jumphost"))
	}
	med := func(ss []sample, f func(sample) time.Duration) time.Duration {
		var d []time.Duration
		for _, s := range ss {
			d = append(d, f(s))
		}
		return median(d)
	}
	wall := func(s sample) time.Duration { return s.wall }
	mcpu := func(s sample) time.Duration { return s.machineCPU }
	gib := float64(size) / (1 << 30)
	mib := float64(size) / (1 << 20)
	dw, bw, sw := med(direct, wall), med(bastion, wall), med(sshdJump, wall)
	b.ReportMetric(mib/dw.Seconds(), "direct-MiB/s")
	b.ReportMetric(mib/bw.Seconds(), "bastion-MiB/s")
	b.ReportMetric(mib/sw.Seconds(), "sshd-jump-MiB/s")
	b.ReportMetric(100*dw.Seconds()/bw.Seconds(), "bastion-%-of-direct")
	b.ReportMetric(100*dw.Seconds()/sw.Seconds(), "sshd-jump-%-of-direct")
	bcpu := med(bastion, func(s sample) time.Duration { return s.bastionCPU }).Seconds() / gib
	jcpu := med(sshdJump, func(s sample) time.Duration { return s.jumpHostCPU }).Seconds() / gib
	b.ReportMetric(bcpu, "bastion-process-CPU-s/GiB")
	b.ReportMetric(jcpu, "sshd-jump-process-CPU-s/GiB")
	// What one core of a bastion host of its own could relay: a jump
	// host is not the bottleneck where this exceeds direct-MiB/s.
	b.ReportMetric(1024/bcpu, "bastion-MiB/s-per-core")
	b.ReportMetric(med(direct, mcpu).Seconds()/gib, "machine-CPU-s/GiB-direct")
	b.ReportMetric(med(bastion, mcpu).Seconds()/gib, "machine-CPU-s/GiB-bastion")
	b.ReportMetric(med(sshdJump, mcpu).Seconds()/gib, "machine-CPU-s/GiB-sshd-jump")
}

// machineCPU is the CPU time every core has spent busy so far
// (/proc/stat: all but idle and iowait).
func machineCPU(b *testing.B) time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		b.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %q: %v", line, err)
		}
		if i != 3 && i != 4 && i < 7 { // not idle, iowait, steal; guest time is already in user
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTicks
}

// procCPU is a process's user plus system time so far (0 once it is
// gone).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if os.IsNotExist(err) {
			return 0
		}
		b.Fatal(err)
	}
	// The command name may hold spaces: fields count from after ")".
	_, rest, _ := strings.Cut(string(data), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	return time.Duration(ut+st) * time.Second / clockTicks
}

// sampleTree follows the CPU time of the processes a daemon forks from
// now on (sshd: one or more per connection), polling /proc every 20 ms,
// and returns a function that stops and returns their total. sshd's
// session processes are not all reaped by the listener, so its cutime
// misses them; what a process spends in its last 20 ms is missed here.
func sampleTree(b *testing.B, root int) func() time.Duration {
	seen := map[int]time.Duration{}
	before := map[int]bool{}
	var walk func(pid int, record bool)
	walk = func(pid int, record bool) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return // gone
		}
		for _, f := range strings.Fields(string(data)) {
			c, _ := strconv.Atoi(f)
			if !record {
				before[c] = true
			} else if !before[c] {
				if t := procCPU(b, c); t > seen[c] {
					seen[c] = t
				}
			}
			walk(c, record)
		}
	}
	walk(root, false)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			walk(root, true)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() time.Duration {
		close(stop)
		<-done
		var total time.Duration
		for _, t := range seen {
			total += t
		}
		return total
	}
}

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// BenchmarkIdleJumpSessions: 500 clients each hold a jump channel open
// to an idle TCP target; the bastion runs as its own process so its RSS
// is its own. Target: ≤ 1 MB per session.
func BenchmarkIdleJumpSessions(b *testing.B) {
	const n = 500
	testenv.RequireRoot(b)
	dir := b.TempDir()
	bin := testenv.BuildCommand(b, "bastion")
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
	testenv.WaitTCP(b, "bastion serve", addr, 10*time.Second)
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
