package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
)

func TestImportListAndCSV(t *testing.T) {
	h := newHarness(t, Config{Policy: Policy{ManualTTL: 24 * time.Hour}})
	ctx := context.Background()
	admin := h.client("admin", RoleAdmin)
	agent := &agentView{c: h.client("agent", RoleAgent)}
	agent.sync(t, 0)
	v0 := h.srv.eng.seq
	res, err := admin.Import(ctx, strings.NewReader("# a list\n192.0.2.1\n198.51.100.0/24 ; comment\n2001:db8:1::/48\n192.0.2.1\n"), client.ImportOptions{Name: "list.txt", Reason: "bulk"})
	if err != nil || res.Imported != 3 || res.RejectedCount != 0 {
		t.Fatalf("list import: %+v, %v", res, err)
	}
	if h.srv.eng.seq != v0+1 {
		t.Fatalf("import took %d store changes, want 1", h.srv.eng.seq-v0)
	}
	csv := "prefix,ttl,reason\n203.0.113.1,1h,\"ssh, then http\"\n203.0.113.2,,\n203.0.113.3\n"
	if res, err = admin.Import(ctx, strings.NewReader(csv), client.ImportOptions{Name: "bans.csv", Reason: "default"}); err != nil || res.Imported != 3 {
		t.Fatalf("csv import: %+v, %v", res, err)
	}
	l, err := admin.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]client.Decision{}
	for _, d := range l.Decisions {
		got[d.Prefix.String()] = d
	}
	now := h.clock.now()
	for p, want := range map[string]struct {
		reason string
		ttl    time.Duration
	}{
		"192.0.2.1/32": {"bulk", 24 * time.Hour}, "2001:db8:1::/48": {"bulk", 24 * time.Hour},
		"203.0.113.1/32": {"ssh, then http", time.Hour}, "203.0.113.2/32": {"default", 24 * time.Hour}, "203.0.113.3/32": {"default", 24 * time.Hour},
	} {
		d, ok := got[p]
		if !ok || d.Reason != want.reason || !d.Expires.Equal(now.Add(want.ttl)) || d.Source != SourceManual {
			t.Errorf("%s: %+v, want reason %q ttl %s", p, d, want.reason, want.ttl)
		}
	}
	agent.sync(t, time.Second)
	if len(agent.set) != 6 {
		t.Fatalf("agent holds %v", agent.list())
	}
}

// One bad entry refuses the whole import (nothing written) unless the
// caller skips invalid entries; every refusal names its line.
func TestImportRefusals(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	admin := h.client("admin", RoleAdmin)
	body := "192.0.2.1\n127.0.0.1\n0.0.0.0/0\nnot-an-address\n224.0.0.1\n192.0.2.2\n"
	_, err := admin.Import(ctx, strings.NewReader(body), client.ImportOptions{Name: "bad.txt"})
	if !errors.Is(err, client.ErrRejected) || !strings.Contains(err.Error(), "4 of 6 entries refused") || !strings.Contains(err.Error(), "bad.txt:2:") {
		t.Fatalf("import with bad lines: %v", err)
	}
	if l, _ := admin.List(ctx); len(l.Decisions) != 0 {
		t.Fatalf("a refused import wrote %v", l.Decisions)
	}
	res, err := admin.Import(ctx, strings.NewReader(body), client.ImportOptions{Name: "bad.txt", SkipInvalid: true})
	if err != nil || res.Imported != 2 || res.RejectedCount != 4 || len(res.Rejected) != 4 {
		t.Fatalf("skip invalid: %+v, %v", res, err)
	}
	for _, csv := range []string{"192.0.2.9,forever,x\n", "192.0.2.9,1h,\"\x1b[2J\"\n", "192.0.2.9,1h,a,b\n", "192.0.2.9,1h,\"unterminated\n"} {
		if _, err := admin.Import(ctx, strings.NewReader(csv), client.ImportOptions{Format: "csv"}); !errors.Is(err, client.ErrRejected) {
			t.Errorf("csv %q: %v", csv, err)
		}
	}
	if _, err := admin.Import(ctx, strings.NewReader("192.0.2.1\n"), client.ImportOptions{Format: "xml"}); !errors.Is(err, client.ErrRejected) {
		t.Errorf("unknown format: %v", err)
	}
}

// 100,000 bans in one import: one store commit, and an agent at the old
// version gets them in its next sync. (Timing is logged, not asserted;
// test/blocklist's BenchmarkImport measures it end to end.)
func TestImportHundredThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 entries")
	}
	h := newHarness(t, Config{})
	ctx := context.Background()
	admin := h.client("admin", RoleAdmin)
	agent := &agentView{c: h.client("agent", RoleAgent)}
	agent.sync(t, 0)
	var b strings.Builder
	r := rand.New(rand.NewPCG(100, 100))
	want := map[netip.Prefix]bool{}
	for len(want) < 100_000 {
		a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(100)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		p := netip.PrefixFrom(a, 32)
		if !want[p] {
			want[p] = true
			fmt.Fprintln(&b, a)
		}
	}
	seq := h.srv.eng.seq
	start := time.Now()
	res, err := admin.Import(ctx, strings.NewReader(b.String()), client.ImportOptions{})
	if err != nil || res.Imported != 100_000 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	t.Logf("100,000 imported and committed in %v", time.Since(start))
	if h.srv.eng.seq != seq+1 {
		t.Fatalf("%d store changes, want 1", h.srv.eng.seq-seq)
	}
	agent.sync(t, time.Second)
	t.Logf("... and held by the agent %v after the import started", time.Since(start))
	if len(agent.set) != 100_000 {
		t.Fatalf("agent holds %d", len(agent.set))
	}
	for p := range want {
		if !agent.set[p] {
			t.Fatalf("agent lacks %s", p)
		}
	}
}

func FuzzParseImport(f *testing.F) {
	f.Add([]byte("prefix,ttl,reason\n192.0.2.1,1h,x\n"), "")
	f.Add([]byte("192.0.2.0/24\n# c\n::1\n"), "list")
	f.Add([]byte("a,\"b\n"), "csv")
	f.Fuzz(func(t *testing.T, data []byte, format string) {
		entries, rejected, n, err := ParseImport(strings.NewReader(string(data)), "fuzz", format)
		if err != nil {
			if format == "" || format == "list" || format == "csv" {
				t.Fatalf("error for a known format: %v", err)
			}
			return
		}
		if len(rejected) > n {
			t.Fatalf("%d rejections kept, %d counted", len(rejected), n)
		}
		for _, e := range entries {
			if !e.Prefix.IsValid() || e.Prefix != e.Prefix.Masked() || e.TTL < 0 || CheckReason(e.Reason) != nil {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}
