package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/internal/wire"
	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
	"go4.org/netipx"
)

func newTestEngine(t *testing.T) *engine {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEngine(st, slog.New(slog.DiscardHandler), time.Now)
	if err := e.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// The published set equals (union of decisions) minus (union of allow
// entries), never overlaps itself, and an agent following deltas holds
// exactly it — checked after every step of a random walk.
func TestPublishedSetProperties(t *testing.T) {
	e := newTestEngine(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(4, 2))
	// Small address space so that prefixes nest and overlap often.
	randPrefix := func() netip.Prefix {
		if r.IntN(4) == 0 {
			bits := 112 + r.IntN(17)
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(r.IntN(4)), 15: byte(r.IntN(256))})
			p, _ := a.Prefix(bits)
			return p
		}
		bits := 20 + r.IntN(13)
		a := netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(16)), byte(r.IntN(256))})
		p, _ := a.Prefix(bits)
		return p
	}
	sources := []string{SourceManual, SourceReport, "feed:a"}
	agentSet := map[netip.Prefix]bool{}
	var agentVersion uint64
	for step := range 300 {
		var muts []store.Mutation
		for range 1 + r.IntN(3) {
			p := randPrefix()
			switch r.IntN(6) {
			case 0, 1, 2:
				muts = append(muts, store.Mutation{Op: store.PutDecision, Decision: &store.Decision{Prefix: p, Action: store.ActionBan, Source: sources[r.IntN(3)], Created: time.Now()}})
			case 3:
				muts = append(muts, store.Mutation{Op: store.DeleteDecision, Prefix: p})
			case 4:
				muts = append(muts, store.Mutation{Op: store.PutAllow, Allow: &store.Allow{Prefix: p, Created: time.Now()}})
			case 5:
				// Delete something that exists, so the sets also shrink.
				e.mu.RLock()
				for k := range e.decisions {
					p = k.prefix
					break
				}
				e.mu.RUnlock()
				if r.IntN(2) == 0 {
					muts = append(muts, store.Mutation{Op: store.DeleteDecision, Prefix: p})
				} else {
					e.mu.RLock()
					for a := range e.allow {
						p = a
						break
					}
					e.mu.RUnlock()
					muts = append(muts, store.Mutation{Op: store.DeleteAllow, Prefix: p})
				}
			}
		}
		if _, err := e.apply(ctx, muts); err != nil {
			t.Fatal(err)
		}
		checkPublished(t, e, step)
		// An agent syncing every few steps from its version.
		if step%3 == 0 {
			data, v, _ := e.updateFor(agentVersion)
			if data != nil {
				u, err := wire.Decode(bytesReader(data), 0)
				if err != nil {
					t.Fatal(err)
				}
				if u.Full {
					clear(agentSet)
					for _, p := range u.Entries {
						agentSet[p] = true
					}
				} else {
					for _, p := range u.Remove {
						if !agentSet[p] {
							t.Fatalf("step %d: delta removes %v the agent does not hold", step, p)
						}
						delete(agentSet, p)
					}
					for _, p := range u.Add {
						if agentSet[p] {
							t.Fatalf("step %d: delta adds %v the agent already holds", step, p)
						}
						agentSet[p] = true
					}
				}
				agentVersion = v
			}
			e.mu.RLock()
			if len(agentSet) != e.published.len() {
				t.Fatalf("step %d: agent holds %d prefixes, published %d", step, len(agentSet), e.published.len())
			}
			for p := range agentSet {
				if !e.published.has(p) {
					t.Fatalf("step %d: agent holds %v, not published", step, p)
				}
			}
			e.mu.RUnlock()
		}
	}
	// A reload from the store publishes the same set.
	e.mu.RLock()
	before := map[netip.Prefix]bool{}
	for p := range e.published.all() {
		before[p] = true
	}
	e.mu.RUnlock()
	if err := e.load(ctx); err != nil {
		t.Fatal(err)
	}
	if e.published.len() != len(before) {
		t.Fatalf("reload published %d prefixes, had %d", e.published.len(), len(before))
	}
	for p := range before {
		if !e.published.has(p) {
			t.Fatalf("reload lost %v", p)
		}
	}
}

func checkPublished(t *testing.T, e *engine, step int) {
	t.Helper()
	e.mu.RLock()
	defer e.mu.RUnlock()
	var want netipx.IPSetBuilder
	for k := range e.decisions {
		want.AddPrefix(k.prefix)
	}
	for p := range e.allow {
		want.RemovePrefix(p)
	}
	wantSet, _ := want.IPSet()
	var got netipx.IPSetBuilder
	for p := range e.published.all() {
		got.AddPrefix(p)
	}
	gotSet, _ := got.IPSet()
	if !gotSet.Equal(wantSet) {
		t.Fatalf("step %d: published %v, want %v", step, gotSet.Prefixes(), wantSet.Prefixes())
	}
	for p := range e.published.all() {
		for q := range e.published.all() {
			if p != q && p.Overlaps(q) {
				t.Fatalf("step %d: published %v and %v overlap", step, p, q)
			}
		}
	}
}

func TestDeltaFolding(t *testing.T) {
	e := newTestEngine(t)
	ctx := context.Background()
	ban := func(p string) store.Mutation {
		return store.Mutation{Op: store.PutDecision, Decision: &store.Decision{Prefix: pfx(p), Action: store.ActionBan, Source: SourceManual, Created: time.Now()}}
	}
	unban := func(p string) store.Mutation { return store.Mutation{Op: store.DeleteDecision, Prefix: pfx(p)} }
	e.apply(ctx, []store.Mutation{ban("192.0.2.1/32"), ban("192.0.2.2/32")})
	v0, _ := e.currentVersion()
	// Added then removed within the window: the agent hears nothing of it.
	e.apply(ctx, []store.Mutation{ban("192.0.2.3/32")})
	e.apply(ctx, []store.Mutation{unban("192.0.2.3/32")})
	// Removed then added back: nothing either.
	e.apply(ctx, []store.Mutation{unban("192.0.2.1/32")})
	e.apply(ctx, []store.Mutation{ban("192.0.2.1/32")})
	e.apply(ctx, []store.Mutation{unban("192.0.2.2/32"), ban("192.0.2.4/32")})
	e.mu.RLock()
	add, remove := e.deltaLocked(v0)
	e.mu.RUnlock()
	if fmt.Sprint(add) != "[192.0.2.4/32]" || fmt.Sprint(remove) != "[192.0.2.2/32]" {
		t.Fatalf("delta add %v remove %v", add, remove)
	}
}

// A narrower decision under a wider one is published only when the wider
// one goes; an allow entry inside a ban splits it.
func TestNestingAndSplitting(t *testing.T) {
	e := newTestEngine(t)
	ctx := context.Background()
	put := func(p, src string) store.Mutation {
		return store.Mutation{Op: store.PutDecision, Decision: &store.Decision{Prefix: pfx(p), Action: store.ActionBan, Source: src, Created: time.Now()}}
	}
	published := func() string {
		e.mu.RLock()
		defer e.mu.RUnlock()
		var b netipx.IPSetBuilder
		n := 0
		for p := range e.published.all() {
			b.AddPrefix(p)
			n++
		}
		s, _ := b.IPSet()
		return fmt.Sprint(n, s.Prefixes())
	}
	steps := []struct {
		muts []store.Mutation
		want string
	}{
		{[]store.Mutation{put("10.1.2.3/32", SourceReport)}, "1 [10.1.2.3/32]"},
		{[]store.Mutation{put("10.0.0.0/8", "feed:x")}, "1 [10.0.0.0/8]"},
		{[]store.Mutation{{Op: store.PutAllow, Allow: &store.Allow{Prefix: pfx("10.0.0.0/9")}}}, "1 [10.128.0.0/9]"},
		{[]store.Mutation{{Op: store.DeleteDecision, Prefix: pfx("10.0.0.0/8")}}, "0 []"},
		{[]store.Mutation{{Op: store.DeleteAllow, Prefix: pfx("10.0.0.0/9")}}, "1 [10.1.2.3/32]"},
	}
	for i, s := range steps {
		if _, err := e.apply(ctx, s.muts); err != nil {
			t.Fatal(err)
		}
		if got := published(); got != s.want {
			t.Fatalf("step %d: published %s, want %s", i, got, s.want)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
