package blocklist_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/agent"
	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
	"github.com/rampart-sec/rampart/firewall/nftables"
	"github.com/rampart-sec/rampart/test/testenv"
)

// BenchmarkE2EReportToEnforcement: 200 reports, one at a time, each over
// blocklistd's threshold; the latency of one report is from sending it to
// the moment the kernel of a host (a or b, each polled on its own) drops
// the address. Metrics: p50, p99 and max over the 400 host samples.
func BenchmarkE2EReportToEnforcement(b *testing.B) {
	for range b.N {
		b.StopTimer()
		f := newFleet(b)
		f.startServers("")
		agents := []*fleetAgent{
			f.newAgent(f.a, "agent-a", agentOpts{}),
			f.newAgent(f.b, "agent-b", agentOpts{}),
		}
		for _, ag := range agents {
			f.start(ag)
			f.waitStatus(ag, "first sync", func(s agent.Status, running bool) bool { return running && s.Reachable })
		}
		rep := f.nsClient(f.srv, 0, "reporter")
		readers := []*nftables.Backend{}
		for _, h := range []*testenv.Host{f.a, f.b} {
			nb, err := nftables.New(nftables.Options{NetNS: h.Path()})
			if err != nil {
				b.Fatal(err)
			}
			readers = append(readers, nb)
		}
		ctx := context.Background()
		var samples []time.Duration
		b.StartTimer()
		for i := range 200 {
			addr := netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
			var wg sync.WaitGroup
			lat := make([]time.Duration, len(readers))
			start := time.Now()
			if err := rep.Report(ctx, client.Report{Addr: addr, Reason: "bench", Count: 3}); err != nil {
				b.Fatal(err)
			}
			for j, r := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					lat[j] = pollUntilBlocked(b, r, addr, start)
				}()
			}
			wg.Wait()
			samples = append(samples, lat...)
		}
		b.StopTimer()
		slices.Sort(samples)
		pct := func(p float64) float64 {
			return float64(samples[int(p*float64(len(samples)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.50), "ms-p50")
		b.ReportMetric(pct(0.99), "ms-p99")
		b.ReportMetric(pct(1), "ms-max")
		b.ReportMetric(float64(len(samples)), "samples")
	}
}

// pollUntilBlocked returns how long after start the kernel began to drop
// addr, polling every half millisecond (30 s at most).
func pollUntilBlocked(b *testing.B, r *nftables.Backend, addr netip.Addr, start time.Time) time.Duration {
	for {
		set, err := r.Current(context.Background())
		if err == nil && set.Contains(addr) {
			return time.Since(start)
		}
		if time.Since(start) > 30*time.Second {
			b.Errorf("%v not enforced after 30s (last error %v)", addr, err)
			return time.Since(start)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// BenchmarkE2EFullSyncMillion: blocklistd holds 1,000,000 single-address
// bans; a new agent in host b starts and is timed until its kernel
// enforces the whole snapshot (the agent reports the set as enforced only
// after the backend's Replace returned). Then the agent is restarted with
// blocklistd down and timed until the saved snapshot is enforced again.
// Metrics: s-first-sync (cold server cache, end to end), s-restore.
func BenchmarkE2EFullSyncMillion(b *testing.B) {
	for range b.N {
		b.StopTimer()
		f := newFleet(b)
		t0 := time.Now()
		preloadMillion(b, filepath.Join(f.dir, "blocklistd.db"))
		t1 := time.Now()
		f.listenTimeout = 5 * time.Minute
		f.startServers("")
		b.Logf("setup: preload %v, blocklistd start %v", t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
		ag := f.newAgent(f.b, "agent-b", agentOpts{})
		ctx := context.Background()
		b.StartTimer()
		start := time.Now()
		f.start(ag)
		st := waitEntries(b, ag, 1_000_000, false)
		first := time.Since(start)
		b.StopTimer()

		// The kernel holds them: sample a few through the library.
		nb, _ := nftables.New(nftables.Options{NetNS: f.b.Path()})
		set, err := nb.Current(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, r := range set.Ranges() {
			if r.From() == r.To() {
				n++
			}
		}
		if n < 999_000 {
			b.Fatalf("kernel holds %d single addresses, want about 1,000,000 (status %+v)", n, st)
		}

		f.stopServers()
		ag.proc.stop(b)
		firstLog := ag.proc.log.String()
		start = time.Now()
		f.start(ag)
		waitEntries(b, ag, 1_000_000, true)
		restore := time.Since(start)

		logTimings(b, firstLog)
		logTimings(b, ag.proc.log.String())
		b.ReportMetric(first.Seconds(), "s-first-sync")
		b.ReportMetric(restore.Seconds(), "s-restore")
		b.ReportMetric(float64(n), "enforced")
	}
}

// logTimings shows the agent's own account of where the time went.
func logTimings(b *testing.B, log string) {
	for _, l := range strings.Split(log, "\n") {
		for _, k := range []string{"snapshot received", "blocklist updated", "enforcing saved", "replaced blocklist"} {
			if strings.Contains(l, k) {
				b.Log(l)
			}
		}
	}
}

// waitEntries polls the agent's socket until it enforces n entries (from
// the saved snapshot when restored).
func waitEntries(b *testing.B, ag *fleetAgent, n int, restored bool) agent.Status {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, running, err := agent.QueryStatus(context.Background(), ag.state)
		if err == nil && running && st.Entries >= n && st.Restored == restored {
			return st
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d entries after 2 minutes (%v)\n%s", ag.name, st.Entries, err, ag.proc.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// preloadMillion writes 1,000,000 bans on random public IPv4 addresses
// into a bbolt store, in batches, before blocklistd opens it. They are
// manual bans: blocklistd drops feed decisions whose feed it does not have.
func preloadMillion(b *testing.B, path string) {
	st, err := boltstore.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(4, 4))
	seen := make(map[uint32]bool, 1_000_000)
	now := time.Now()
	muts := make([]store.Mutation, 0, 1_000_000)
	for len(muts) < 1_000_000 {
		v := r.Uint32()
		// Public unicast only: no 0/8, 10/8, 100.64/10, 127/8, multicast or reserved.
		top := v >> 24
		if seen[v] || top == 0 || top == 10 || top == 100 || top == 127 || top >= 224 {
			continue
		}
		seen[v] = true
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], v)
		muts = append(muts, store.Mutation{Op: store.PutDecision, Decision: &store.Decision{
			Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), Action: store.ActionBan, Source: "manual", Reason: "bench", Created: now}})
	}
	// In key order, bbolt appends instead of splitting pages everywhere.
	slices.SortFunc(muts, func(x, y store.Mutation) int { return strings.Compare(x.Decision.Key(), y.Decision.Key()) })
	for batch := range slices.Chunk(muts, 250_000) {
		if _, err := st.Apply(context.Background(), batch); err != nil {
			b.Fatal(fmt.Errorf("preload: %w", err))
		}
	}
}
