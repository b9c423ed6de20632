package agent

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/firewall"
)

func randomHosts(n int) []netip.Prefix {
	r := rand.New(rand.NewPCG(4, 4))
	seen := make(map[uint32]bool, n)
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		v := r.Uint32()
		if seen[v] || v>>24 == 0 || v>>24 >= 224 {
			continue
		}
		seen[v] = true
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], v)
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(a), 32))
	}
	return sortedUnique(out)
}

// BenchmarkAgentFullMillion: the agent's own share of a 1,000,000-entry
// full snapshot, without kernel or network: policy (merge, allowlist)
// and bookkeeping, with a backend that takes the compact set and does
// nothing, then the snapshot written to disk and read back.
// Metrics: ms-policy (firewall.Policy.BuildSet alone), ms-handle (the whole
// update as the follow loop handles it), ms-save, MB-snapshot.
func BenchmarkAgentFullMillion(b *testing.B) {
	entries := randomHosts(1_000_000)
	dir := b.TempDir()
	policy := firewall.Policy{HostAddrs: func() ([]netip.Addr, error) { return nil, nil }}
	for range b.N {
		start := time.Now()
		if _, _, err := policy.BuildSet(slices.Values(entries)); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-policy")

		a, err := New(Options{Backend: discardBackend{}, Server: newFakeServer(), StateDir: dir, Policy: policy})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := a.handle(context.Background(), client.Update{Version: 1, Full: true, Entries: entries}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-handle")
		start = time.Now()
		a.persistNow()
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-save")
		start = time.Now()
		if _, err := LoadSnapshot(filepath.Join(dir, SnapshotFile), 0); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-load")
	}
}

// discardBackend accepts everything, as fast as possible.
type discardBackend struct{}

func (discardBackend) Replace(context.Context, *netipx.IPSet) error    { return nil }
func (discardBackend) ReplaceSet(context.Context, *firewall.Set) error { return nil }
func (discardBackend) Apply(context.Context, firewall.Delta) error     { return nil }
func (discardBackend) Current(context.Context) (*netipx.IPSet, error)  { return &netipx.IPSet{}, nil }
func (discardBackend) Remove(context.Context) error                    { return nil }
