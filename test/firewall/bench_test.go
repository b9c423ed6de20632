package firewall_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/nftables"
	"github.com/rampart-sec/rampart/test/testenv"
)

// benchData is the benchmark's blocklist: distinct random IPv4 and IPv6
// addresses and IPv4 prefixes, kept as text for both loaders.
type benchData struct {
	v4, v6, nets []string
}

func newBenchData(rng *rand.Rand, n4, n6, nnets int) benchData {
	var d benchData
	seen := map[string]bool{}
	for len(d.v4) < n4 {
		s := fmt.Sprintf("%d.%d.%d.%d", 11+rng.IntN(212), rng.IntN(256), rng.IntN(256), rng.IntN(256))
		if !seen[s] {
			seen[s] = true
			d.v4 = append(d.v4, s)
		}
	}
	for len(d.v6) < n6 {
		s := fmt.Sprintf("2001:db8:%x:%x::%x", rng.IntN(1<<16), rng.IntN(1<<16), 1+rng.IntN(1<<16-1))
		if !seen[s] {
			seen[s] = true
			d.v6 = append(d.v6, s)
		}
	}
	for len(d.nets) < nnets {
		bits := []int{16, 20, 24}[rng.IntN(3)]
		a := uint32(11+rng.IntN(212))<<24 | rng.Uint32()&0xffffff
		a &^= 1<<(32-bits) - 1
		s := fmt.Sprintf("%d.%d.%d.%d/%d", a>>24, a>>16&255, a>>8&255, a&255, bits)
		if !seen[s] {
			seen[s] = true
			d.nets = append(d.nets, s)
		}
	}
	return d
}

func (d benchData) listFile(t testing.TB, path string) string {
	var b strings.Builder
	for _, part := range [][]string{d.v4, d.v6, d.nets} {
		for _, s := range part {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	return writeFile(t, path, b.String())
}

// nftScript is what a user would write to load the same content with
// nft -f: one table, a set per kind, overlapping prefixes auto-merged.
func (d benchData) nftScript(t testing.TB, path string) string {
	var b strings.Builder
	b.WriteString("table inet userbench {\n")
	for _, s := range []struct {
		name, typ, flags string
		elems            []string
	}{
		{"a4", "ipv4_addr", "", d.v4},
		{"a6", "ipv6_addr", "", d.v6},
		{"n4", "ipv4_addr", "flags interval; auto-merge;", d.nets},
	} {
		fmt.Fprintf(&b, "  set %s { type %s; %s elements = { %s } }\n", s.name, s.typ, s.flags, strings.Join(s.elems, ",\n"))
	}
	b.WriteString("  chain input { type filter hook input priority 0; policy accept;\n")
	b.WriteString("    ip saddr @a4 drop\n    ip6 saddr @a6 drop\n    ip saddr @n4 drop\n  }\n}\n")
	return writeFile(t, path, b.String())
}

// runMeasured runs cmd to completion and returns its wall time, peak RSS
// and CPU time (user+system).
//
// The peak is the child's VmHWM, polled from /proc while it runs: the
// rusage maxrss of a child of this process is useless here, because Go
// starts children with vfork semantics and Linux carries the parent's
// high-water mark (this benchmark's hundreds of megabytes of test data)
// into the child's maxrss at exec.
func runMeasured(b *testing.B, cmd *exec.Cmd) (wall time.Duration, maxRSS int64, cpu time.Duration) {
	b.Helper()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	peak := make(chan int64)
	go func() {
		var hwm int64
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if kb := statusKB(status, "VmHWM:"); kb*1024 > hwm {
				hwm = kb * 1024
			}
			select {
			case <-done:
				peak <- hwm
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	wall = time.Since(start)
	close(done)
	maxRSS = <-peak
	if err != nil {
		b.Fatalf("%s: %v\n%.2000s", cmd, err, out.String())
	}
	b.Logf("%s: %s", filepath.Base(cmd.Path), strings.TrimSpace(out.String()))
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return wall, maxRSS, cpu
}

// statusKB reads one "Key: N kB" line of a /proc status file; 0 if absent.
func statusKB(path, key string) int64 {
	status, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == key {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	return 0
}

// BenchmarkFirewall is issue 3's benchmark: in a network namespace, a full
// replace of 1,000,000 IPv4 + 100,000 IPv6 addresses + 10,000 prefixes by
// the real blocklist-agent binary, then a delta of 1,000 additions and
// 1,000 removals; the same content loaded with nft -f for comparison; the
// stripped binary size and idle RSS. Run with `make bench` or
//
//	go test -run '^$' -bench Firewall -benchtime 1x ./test/firewall/
func BenchmarkFirewall(b *testing.B) {
	testenv.RequireRoot(b)
	nft := testenv.Binary(b, "nft")
	bin := benchAgent(b)
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(3, 7))
	data := newBenchData(rng, 1_000_000, 100_000, 10_000)
	list := data.listFile(b, filepath.Join(dir, "list.txt"))
	script := data.nftScript(b, filepath.Join(dir, "user.nft"))

	for i := 0; i < b.N; i++ {
		h := testenv.NewHost(b)
		wall, rss, cpu := runMeasured(b, exec.Command(bin, "apply", "--netns", h.Path(), "--file", list))
		b.ReportMetric(wall.Seconds(), "replace-wall-s")
		b.ReportMetric(cpu.Seconds(), "replace-cpu-s")
		b.ReportMetric(float64(rss)/1e6, "replace-maxrss-MB")

		// Delta, in process, against the table the agent left: 1,000 new
		// addresses in, 1,000 listed ones out.
		fw, err := nftables.New(nftables.Options{NetNS: h.Path()})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		start := time.Now()
		if err := fw.Apply(ctx, firewall.Delta{}); err != nil { // loads the interval cache, as a restarted agent does once
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "delta-warmup-ms")
		// Five rounds, each with fresh addresses in and other listed ones
		// out; the median resists the noise of a shared machine.
		var rounds []time.Duration
		for r := 0; r < 5; r++ {
			var d firewall.Delta
			for len(d.Add) < 1000 {
				a := netip.AddrFrom4([4]byte{byte(11 + rng.IntN(212)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
				d.Add = append(d.Add, netip.PrefixFrom(a, 32))
			}
			for _, s := range data.v4[r*1000 : (r+1)*1000] {
				d.Remove = append(d.Remove, netip.PrefixFrom(netip.MustParseAddr(s), 32))
			}
			start = time.Now()
			if err := fw.Apply(ctx, d); err != nil {
				b.Fatal(err)
			}
			rounds = append(rounds, time.Since(start))
		}
		slices.Sort(rounds)
		deltaTook := rounds[len(rounds)/2]
		b.ReportMetric(float64(deltaTook.Microseconds())/1000, "delta-median-ms")
		b.ReportMetric(float64(rounds[0].Microseconds())/1000, "delta-min-ms")

		// The same content through nft -f, in a namespace of its own.
		u := testenv.NewHost(b)
		nwall, nrss, ncpu := runMeasured(b, u.Command(nft, "-f", script))
		b.ReportMetric(nwall.Seconds(), "nft-wall-s")
		b.ReportMetric(ncpu.Seconds(), "nft-cpu-s")
		b.ReportMetric(float64(nrss)/1e6, "nft-maxrss-MB")
		b.ReportMetric(nwall.Seconds()/wall.Seconds(), "nft/agent-wall-x")
		b.ReportMetric(float64(nrss)/float64(rss), "nft/agent-rss-x")
		b.Logf("replace: %v wall, %v cpu, %.1f MB peak RSS; delta: %v; nft -f: %v wall, %v cpu, %.1f MB peak RSS",
			wall, cpu, float64(rss)/1e6, deltaTook, nwall, ncpu, float64(nrss)/1e6)
	}

	// Size of the stripped binary, and its RSS when idle (waiting on an
	// empty stdin, after start-up).
	stripped := filepath.Join(dir, "blocklist-agent.stripped")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", stripped, "./cmd/blocklist-agent")
	build.Dir = testenv.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	st, err := os.Stat(stripped)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size())/1e6, "binary-stripped-MB")
	b.ReportMetric(idleRSS(b, stripped)/1e6, "idle-rss-MB")
}

func idleRSS(b *testing.B, bin string) float64 {
	cmd := exec.Command(bin, "apply", "--backend", "pf", "--pfctl", "/bin/false", "--file", "-")
	w, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		w.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	time.Sleep(500 * time.Millisecond)
	kb := statusKB(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid), "VmRSS:")
	if kb == 0 {
		b.Fatal("no VmRSS")
	}
	return float64(kb * 1024)
}
