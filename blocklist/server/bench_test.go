package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/test/testenv"
)

// BenchmarkLongPoll5000Agents runs the blocklistd binary as its own
// process on bbolt, parks 5,000 agents (this process, each with its own
// certificate and TLS connection) in a long poll, bans one address through
// the admin API and measures how long until every agent has it.
// Metrics: ms-to-all (the slowest agent, from the ban request),
// MB-RSS-blocklistd (the daemon holding the 5,000 polls), MB-RSS-agents
// (this process).
func BenchmarkLongPoll5000Agents(b *testing.B) {
	const agents = 5000
	for range b.N {
		b.StopTimer()
		d := startDaemonForBench(b)
		ctx, cancel := context.WithCancel(context.Background())
		clients := make([]*client.Client, agents)
		for i := range clients {
			clients[i] = d.client(b, fmt.Sprintf("agent-%d", i), RoleAgent)
		}
		u, err := clients[0].Sync(ctx, 0, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		v0 := u.Version
		got := make([]time.Time, agents)
		var wg sync.WaitGroup
		errs := make(chan error, agents)
		// Agents connect in waves, as real ones with jittered starts do;
		// 5,000 simultaneous TLS handshakes on two cores would only measure
		// the handshake timeout.
		deadline := time.Now().Add(5 * time.Minute)
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					u, err := c.Sync(ctx, v0, 10*time.Minute)
					if err != nil {
						errs <- err
						return
					}
					if u.Version != v0 {
						got[i] = time.Now()
						return
					}
				}
			}()
			if (i+1)%250 != 0 && i+1 != agents {
				continue
			}
			for d.inFlight(b) < i+1 {
				select {
				case err := <-errs:
					b.Fatalf("agent failed while connecting: %v", err)
				default:
				}
				if time.Now().After(deadline) {
					b.Fatalf("only %d of %d agents connected", d.inFlight(b), i+1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		runtime.GC()
		serverRSS, selfRSS := rssOf(d.cmd.Process.Pid), rssOf(os.Getpid())
		admin := d.client(b, "admin", RoleAdmin)
		serverCPU, selfCPU := cpuOf(d.cmd.Process.Pid), cpuOf(os.Getpid())
		b.StartTimer()
		start := time.Now()
		if err := admin.Ban(ctx, netip.MustParsePrefix("203.0.113.1/32"), 0, "bench"); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		b.StopTimer()
		serverCPU, selfCPU = cpuOf(d.cmd.Process.Pid)-serverCPU, cpuOf(os.Getpid())-selfCPU
		close(errs)
		for err := range errs {
			b.Fatalf("agent: %v", err)
		}
		var last time.Time
		for _, t := range got {
			if t.After(last) {
				last = t
			}
		}
		b.ReportMetric(float64(last.Sub(start).Milliseconds()), "ms-to-all")
		b.ReportMetric(serverRSS/(1<<20), "MB-RSS-blocklistd")
		b.ReportMetric(selfRSS/(1<<20), "MB-RSS-agents")
		b.ReportMetric(float64(serverCPU.Milliseconds()), "cpu-ms-blocklistd")
		b.ReportMetric(float64(selfCPU.Milliseconds()), "cpu-ms-agents")
		cancel()
	}
}

// cpuOf is the user+system CPU time a process has used, from
// /proc/PID/stat (in clock ticks of 10 ms); timings on a shared machine
// depend on the neighbours, CPU time much less.
func cpuOf(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func rssOf(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) * 1024
		}
	}
	return 0
}

type benchDaemon struct {
	cmd     *exec.Cmd
	ca      *devcert.CA
	url     string
	metrics string
}

// startDaemonForBench builds cmd/blocklistd and serves it on loopback.
func startDaemonForBench(b *testing.B) *benchDaemon {
	dir := b.TempDir()
	bin := filepath.Join(dir, "blocklistd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/blocklistd")
	build.Dir = testenv.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	ca, err := devcert.NewCA("bench CA", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	cert, key, err := ca.Issue(devcert.Leaf{Name: "blocklistd", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.pem": ca.PEM, "server.pem": cert, "server-key.pem": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	cfg := fmt.Sprintf("listen: %s\nmetrics_listen: %s\ntls: {cert: %s/server.pem, key: %s/server-key.pem, client_ca: %s/ca.pem}\nstore: {path: %s/bench.db}\nsync: {max_wait: 10m}\n",
		listen, metricsAddr, dir, dir, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "blocklistd.yaml"), []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", filepath.Join(dir, "blocklistd.yaml"))
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &benchDaemon{cmd: cmd, ca: ca, url: "https://" + listen, metrics: "http://" + metricsAddr + "/metrics"}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(d.metrics); err == nil {
			resp.Body.Close()
			return d
		}
		if time.Since(start) > 30*time.Second {
			b.Fatalf("blocklistd did not start:\n%s", logs.String())
		}
	}
}

func (d *benchDaemon) client(b *testing.B, name string, roles ...string) *client.Client {
	cert, err := d.ca.TLSCert(devcert.Leaf{Name: name, Roles: roles})
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(client.Config{URL: d.url, TLS: &tls.Config{RootCAs: d.ca.Pool(), Certificates: []tls.Certificate{cert}}})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// inFlight reads rampart_blocklistd_sync_requests_in_flight.
func (d *benchDaemon) inFlight(b *testing.B) int {
	resp, err := http.Get(d.metrics)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rampart_blocklistd_sync_requests_in_flight "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

func millionHosts() []store.Mutation {
	r := rand.New(rand.NewPCG(7, 7))
	seen := map[uint32]bool{}
	muts := make([]store.Mutation, 0, 1_000_000)
	now := time.Now()
	for len(muts) < 1_000_000 {
		v := r.Uint32()
		if seen[v] || v>>24 == 0 || v>>24 >= 224 {
			continue
		}
		seen[v] = true
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], v)
		muts = append(muts, store.Mutation{Op: store.PutDecision, Decision: &store.Decision{
			Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), Action: store.ActionBan, Source: "feed:bench", Created: now}})
	}
	return muts
}

// BenchmarkFullSyncMillion: a new agent fetches a 1,000,000-entry snapshot
// over mTLS and decodes it. The state is fed to the engine directly (a
// store load of a million rows is not what is measured); enforcement is
// the agent's part. Metrics: bytes on the wire, time to encode once (the
// first agent pays it, later ones get the cached bytes), time for a
// second agent.
func BenchmarkFullSyncMillion(b *testing.B) {
	for range b.N {
		b.StopTimer()
		h := newHarness(b, Config{})
		h.srv.eng.mu.Lock()
		h.srv.eng.applyChange(store.Change{Seq: 1 << 40, Mutations: millionHosts()})
		h.srv.eng.mu.Unlock()
		c := h.client("agent", RoleAgent)
		b.StartTimer()
		cpu0 := cpuOf(os.Getpid())
		start := time.Now()
		u, err := c.Sync(context.Background(), 0, time.Second)
		first := time.Since(start)
		firstCPU := cpuOf(os.Getpid()) - cpu0
		if err != nil || len(u.Entries) != 1_000_000 {
			b.Fatalf("sync: %d entries, %v", len(u.Entries), err)
		}
		start = time.Now()
		if _, err := h.client("agent-2", RoleAgent).Sync(context.Background(), 0, time.Second); err != nil {
			b.Fatal(err)
		}
		second := time.Since(start)
		b.StopTimer()
		data, _, _ := h.srv.eng.updateFor(0)
		b.ReportMetric(float64(len(data))/1e6, "MB-wire")
		b.ReportMetric(float64(first.Milliseconds()), "ms-first-agent")
		b.ReportMetric(float64(second.Milliseconds()), "ms-cached")
		b.ReportMetric(float64(firstCPU.Milliseconds()), "cpu-ms-first-agent")
		h.stop()
	}
}
