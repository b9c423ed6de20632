package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"github.com/rampart-sec/rampart/blocklist/store"
)

func rssBytes() float64 {
	f, err := os.Open("/proc/self/status")
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

// BenchmarkLongPoll5000Agents holds 5,000 agents, each with its own
// certificate and TLS connection, in a long poll against one blocklistd in
// this process, then bans one address and measures how long until every
// agent has it. Metrics: ms-to-all (the slowest agent), RSS of the whole
// process (server and the 5,000 simulated agents) while they wait.
func BenchmarkLongPoll5000Agents(b *testing.B) {
	const agents = 5000
	for range b.N {
		b.StopTimer()
		h := newHarness(b, Config{MaxWait: 5 * time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		clients := make([]*client.Client, agents)
		for i := range clients {
			cert, err := h.ca.TLSCert(devcert.Leaf{Name: fmt.Sprintf("agent-%d", i), Roles: []string{RoleAgent}})
			if err != nil {
				b.Fatal(err)
			}
			c, err := client.New(client.Config{URL: h.url, TLS: &tls.Config{RootCAs: h.ca.Pool(), Certificates: []tls.Certificate{cert}}})
			if err != nil {
				b.Fatal(err)
			}
			clients[i] = c
		}
		v0 := h.srv.Version()
		got := make([]time.Time, agents)
		var wg sync.WaitGroup
		errs := make(chan error, agents)
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					u, err := c.Sync(ctx, v0, 5*time.Minute)
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
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			h.srv.agentsMu.Lock()
			n := len(h.srv.inflight)
			h.srv.agentsMu.Unlock()
			if n == agents {
				break
			}
			select {
			case err := <-errs:
				b.Fatalf("agent failed while connecting: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d agents connected", n, agents)
			}
			time.Sleep(50 * time.Millisecond)
		}
		runtime.GC()
		rss := rssBytes()
		b.StartTimer()
		start := time.Now()
		if _, err := h.srv.eng.apply(ctx, []store.Mutation{{Op: store.PutDecision, Decision: &store.Decision{
			Prefix: netip.MustParsePrefix("203.0.113.1/32"), Action: store.ActionBan, Source: SourceManual, Created: h.clock.now()}}}); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		b.StopTimer()
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
		b.ReportMetric(rss/(1<<20), "MB-RSS")
		cancel()
		h.stop()
	}
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
		start := time.Now()
		u, err := c.Sync(context.Background(), 0, time.Second)
		first := time.Since(start)
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
		h.stop()
	}
}
