package blocklist_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/agent"
	"github.com/rampart-sec/rampart/firewall/nftables"
	"github.com/rampart-sec/rampart/test/testenv"
)

// BenchmarkImport: `blocklistd import` of 100,000 bans (the real binary,
// run inside the server's host) until the kernels of two agents (real
// nftables, own network namespaces; with PostgreSQL each follows another
// replica) enforce all of them, against the per-ban API path in the same
// run (apiSample bans one at a time through the admin API, extrapolated to
// 100,000). Metrics: s-ack (the import verb returned: one durable commit),
// s-enforced (both agents report the set applied; the kernel is then
// checked for every address), s-api-100k-extrapolated, api-bans/s,
// MB-rss-peak (blocklistd's VmHWM, every replica's highest).
func BenchmarkImport(b *testing.B) {
	for _, backend := range []string{"bolt", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			for range b.N {
				benchImport(b, backend)
			}
		})
	}
}

const (
	importCount = 100_000
	apiSample   = 1_000
)

func benchImport(b *testing.B, backend string) {
	b.StopTimer()
	f := newFleet(b)
	dsn := ""
	if backend == "postgres" {
		// The replicas run in host srv; PostgreSQL's unix socket is a
		// file, reachable from every network namespace.
		pg := testenv.StartPostgres(b)
		u, err := url.Parse(pg.DSN)
		if err != nil {
			b.Fatal(err)
		}
		dsn = fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable", pg.Dir, u.Port())
	}
	f.startServers(dsn)
	agents := []*fleetAgent{f.newAgent(f.a, "agent-a", agentOpts{}), f.newAgent(f.b, "agent-b", agentOpts{replica: 1})}
	for _, ag := range agents {
		f.start(ag)
		f.waitStatus(ag, "first sync", func(s agent.Status, running bool) bool { return running && s.Reachable })
	}
	addrs := publicHosts(importCount+apiSample, 12)
	list := filepath.Join(f.dir, "import.txt")
	fh, err := os.Create(list)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(fh)
	for _, a := range addrs[:importCount] {
		fmt.Fprintln(w, a)
	}
	w.Flush()
	fh.Close()

	// The per-ban path first, on an empty blocklist.
	admin := f.nsClient(f.srv, 0, "admin")
	ctx := context.Background()
	apiStart := time.Now()
	for _, a := range addrs[importCount:] {
		if err := admin.Ban(ctx, netip.PrefixFrom(a, 32), 0, "bench api"); err != nil {
			b.Fatal(err)
		}
	}
	apiTook := time.Since(apiStart)
	waitAgentsEntries(b, agents, apiSample)

	load := loadavg()
	cpu0 := fleetCPU(b, f, agents)
	b.StartTimer()
	start := time.Now()
	out, err := f.srv.Run(f.blocklistd, "import", list, "--reason", "bench import",
		"--url", "https://127.0.0.1:"+strconv.Itoa(fleetPorts[0]), "--cert", f.file("admin.pem"), "--key", f.file("admin-key.pem"), "--ca", f.file("ca.pem"))
	ack := time.Since(start)
	if err != nil {
		b.Fatalf("import: %v\n%s", err, out)
	}
	waitAgentsEntries(b, agents, apiSample+importCount)
	enforced := time.Since(start)
	b.StopTimer()
	cpu1 := fleetCPU(b, f, agents)

	for _, ag := range agents {
		nb, err := nftables.New(nftables.Options{NetNS: ag.host.Path()})
		if err != nil {
			b.Fatal(err)
		}
		set, err := nb.Current(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range addrs {
			if !set.Contains(a) {
				b.Fatalf("%s: the kernel does not block %s", ag.name, a)
			}
		}
	}
	var rss float64
	for _, p := range f.servers {
		rss = max(rss, vmHWM(b, p.cmd.Process.Pid))
	}
	b.Logf("%s: %s; load average before the import: %s", backend, strings.TrimSpace(out), load)
	b.Logf("%s: per-ban API: %d bans in %v (%.0f/s)", backend, apiSample, apiTook.Round(time.Millisecond), float64(apiSample)/apiTook.Seconds())
	b.ReportMetric(ack.Seconds(), "s-ack")
	b.ReportMetric(enforced.Seconds(), "s-enforced")
	b.ReportMetric(apiTook.Seconds()*importCount/apiSample, "s-api-100k-extrapolated")
	b.ReportMetric(float64(apiSample)/apiTook.Seconds(), "api-bans/s")
	b.ReportMetric(rss, "MB-rss-peak")
	b.ReportMetric(cpu1[0]-cpu0[0], "s-cpu-blocklistd")
	b.ReportMetric(cpu1[1]-cpu0[1], "s-cpu-agents")
}

// waitAgentsEntries waits until every agent reports n entries applied.
func waitAgentsEntries(b *testing.B, agents []*fleetAgent, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for _, ag := range agents {
		for {
			st, running, err := agent.QueryStatus(context.Background(), ag.state)
			if err == nil && running && st.Entries >= n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d entries, want %d (%v)\n%s", ag.name, st.Entries, n, err, ag.proc.log)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// publicHosts returns n distinct public unicast IPv4 addresses.
func publicHosts(n int, seed uint64) []netip.Addr {
	r := rand.New(rand.NewPCG(seed, seed))
	seen := make(map[uint32]bool, n)
	out := make([]netip.Addr, 0, n)
	for len(out) < n {
		v := r.Uint32()
		top := v >> 24
		if seen[v] || top == 0 || top == 10 || top == 100 || top == 127 || top == 169 || top == 172 || top == 192 || top >= 224 {
			continue
		}
		seen[v] = true
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], v)
		out = append(out, netip.AddrFrom4(a))
	}
	return out
}

// vmHWM is a process's peak resident set, in MB.
func vmHWM(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatalf("no VmHWM for %d", pid)
	return 0
}

// fleetCPU is the CPU time (user + system) used so far by the blocklistd
// processes and by the agents, in seconds: unlike wall time on a shared
// machine, it does not depend on the load.
func fleetCPU(b *testing.B, f *fleet, agents []*fleetAgent) [2]float64 {
	var out [2]float64
	for _, p := range f.servers {
		out[0] += procCPU(b, p.cmd.Process.Pid)
	}
	for _, ag := range agents {
		out[1] += procCPU(b, ag.proc.cmd.Process.Pid)
	}
	return out
}

func procCPU(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
