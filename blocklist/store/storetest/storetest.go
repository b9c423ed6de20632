// Package storetest is the conformance suite every store.Store passes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/store"
)

// Retainer is implemented by stores whose change-log length can be lowered
// for the compaction test.
type Retainer interface{ SetRetain(uint64) }

// Run runs the suite; open returns a fresh, empty store (closed by the
// test's cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ApplyAndLoad", testApplyAndLoad},
		{"DeleteExact", testDeleteExact},
		{"ConditionalExpiry", testConditionalExpiry},
		{"ChangesReplay", testChangesReplay},
		{"Compaction", testCompaction},
		{"ConcurrentWritersNoGaps", testConcurrent},
		{"CountReport", testCountReport},
		{"CountReportWindowEdge", testCountReportWindowEdge},
		{"CountReportConcurrent", testCountReportConcurrent},
		{"MixedBatchInOrder", testMixedBatch},
		{"LargeBatch", testLargeBatch},
		{"FleetHosts", testFleetHosts},
		{"DecisionRunWithDuplicatesAndExpiry", testDecisionRun},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ban(p, src string, exp time.Time) store.Mutation {
	return store.Mutation{Op: store.PutDecision, Decision: &store.Decision{
		Prefix: netip.MustParsePrefix(p), Action: store.ActionBan, Source: src, Reason: "test " + src, Created: t0, Expires: exp}}
}

func del(p, src string) store.Mutation {
	return store.Mutation{Op: store.DeleteDecision, Prefix: netip.MustParsePrefix(p), Source: src}
}

func mustApply(t *testing.T, s store.Store, muts ...store.Mutation) store.Change {
	t.Helper()
	ch, err := s.Apply(context.Background(), muts)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func keys(st store.State) []string {
	var out []string
	for _, d := range st.Decisions {
		out = append(out, d.Key())
	}
	slices.Sort(out)
	return out
}

func testApplyAndLoad(t *testing.T, s store.Store) {
	ctx := context.Background()
	ch := mustApply(t, s, ban("192.0.2.1/32", "manual", time.Time{}), ban("2001:db8::/64", "report", t0.Add(time.Hour)),
		store.Mutation{Op: store.PutAllow, Allow: &store.Allow{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Reason: "office", Created: t0}},
		store.Mutation{Op: store.PutOffender, Offender: &store.Offender{Prefix: netip.MustParsePrefix("2001:db8::/64"), Bans: 2, Last: t0}})
	if ch.Seq != 1 || len(ch.Mutations) != 4 {
		t.Fatalf("first change = %+v, want seq 1 with 4 mutations", ch)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seq != 1 || !slices.Equal(keys(st), []string{"192.0.2.1/32|manual", "2001:db8::/64|report"}) {
		t.Fatalf("loaded seq %d decisions %v", st.Seq, keys(st))
	}
	for _, d := range st.Decisions {
		if d.Source == "report" && (!d.Expires.Equal(t0.Add(time.Hour)) || !d.Created.Equal(t0) || d.Reason != "test report" || d.Action != "ban") {
			t.Errorf("report decision loaded as %+v", d)
		}
		if d.Source == "manual" && !d.Expires.IsZero() {
			t.Errorf("never-expiring decision loaded with expiry %v", d.Expires)
		}
	}
	if len(st.Allow) != 1 || st.Allow[0].Reason != "office" || len(st.Offenders) != 1 || st.Offenders[0].Bans != 2 {
		t.Fatalf("allow %+v offenders %+v", st.Allow, st.Offenders)
	}
	if ch := mustApply(t, s, del("198.51.100.1/32", ""), store.Mutation{Op: store.DeleteAllow, Prefix: netip.MustParsePrefix("1.0.0.0/8")}); ch.Seq != 0 {
		t.Fatalf("deleting nothing recorded change %+v", ch)
	}
	if ch := mustApply(t, s, ban("192.0.2.1/32", "manual", time.Time{})); ch.Seq != 2 {
		t.Fatalf("second change has seq %d, want 2", ch.Seq)
	}
}

func testDeleteExact(t *testing.T, s store.Store) {
	mustApply(t, s, ban("192.0.2.0/24", "manual", time.Time{}), ban("192.0.2.0/24", "feed:x", time.Time{}), ban("192.0.2.0/25", "manual", time.Time{}))
	ch := mustApply(t, s, del("192.0.2.0/24", ""))
	var got []string
	for _, m := range ch.Mutations {
		got = append(got, string(m.Op)+" "+m.Prefix.String()+" "+m.Source)
	}
	slices.Sort(got)
	want := []string{"delete-decision 192.0.2.0/24 feed:x", "delete-decision 192.0.2.0/24 manual"}
	if !slices.Equal(got, want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
	st, _ := s.Load(context.Background())
	if !slices.Equal(keys(st), []string{"192.0.2.0/25|manual"}) {
		t.Fatalf("left %v", keys(st))
	}
}

func testConditionalExpiry(t *testing.T, s store.Store) {
	mustApply(t, s, ban("192.0.2.1/32", "report", t0.Add(time.Minute)), ban("192.0.2.2/32", "report", t0.Add(time.Hour)), ban("192.0.2.3/32", "manual", time.Time{}))
	m := func(p string) store.Mutation {
		return store.Mutation{Op: store.DeleteDecision, Prefix: netip.MustParsePrefix(p), IfExpiredBy: t0.Add(2 * time.Minute)}
	}
	ch := mustApply(t, s, m("192.0.2.1/32"), m("192.0.2.2/32"), m("192.0.2.3/32"))
	if len(ch.Mutations) != 1 || ch.Mutations[0].Prefix != netip.MustParsePrefix("192.0.2.1/32") {
		t.Fatalf("expiry deleted %+v, want only 192.0.2.1/32", ch.Mutations)
	}
}

// Replaying the change log from zero rebuilds exactly what Load returns.
func testChangesReplay(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustApply(t, s, ban("192.0.2.1/32", "manual", time.Time{}), ban("192.0.2.2/32", "report", t0))
	mustApply(t, s, del("192.0.2.1/32", ""), ban("192.0.2.3/32", "feed:a", time.Time{}))
	mustApply(t, s, ban("192.0.2.2/32", "report", t0.Add(time.Hour)))
	chs, err := s.Changes(ctx, 0, 2)
	if err != nil || len(chs) != 2 || chs[0].Seq != 1 || chs[1].Seq != 2 {
		t.Fatalf("Changes(0, 2) = %+v, %v", chs, err)
	}
	rest, err := s.Changes(ctx, 2, 100)
	if err != nil || len(rest) != 1 || rest[0].Seq != 3 {
		t.Fatalf("Changes(2) = %+v, %v", rest, err)
	}
	if none, err := s.Changes(ctx, 3, 100); err != nil || len(none) != 0 {
		t.Fatalf("Changes(3) = %+v, %v", none, err)
	}
	replayed := map[string]store.Decision{}
	for _, ch := range append(chs, rest...) {
		for _, m := range ch.Mutations {
			switch m.Op {
			case store.PutDecision:
				replayed[m.Decision.Key()] = *m.Decision
			case store.DeleteDecision:
				if m.Source == "" {
					t.Fatalf("change %d has a delete without source", ch.Seq)
				}
				delete(replayed, m.Prefix.String()+"|"+m.Source)
			}
		}
	}
	st, _ := s.Load(ctx)
	if len(st.Decisions) != len(replayed) {
		t.Fatalf("replay has %d decisions, Load %d", len(replayed), len(st.Decisions))
	}
	for _, d := range st.Decisions {
		r, ok := replayed[d.Key()]
		if !ok || !r.Expires.Equal(d.Expires) {
			t.Errorf("decision %s: replayed %+v, loaded %+v", d.Key(), r, d)
		}
	}
}

func testCompaction(t *testing.T, s store.Store) {
	r, ok := s.(Retainer)
	if !ok {
		t.Skip("store has no SetRetain")
	}
	r.SetRetain(10)
	for i := range 1000 {
		mustApply(t, s, ban(fmt.Sprintf("10.0.%d.%d/32", i/256, i%256), "report", time.Time{}))
	}
	if _, err := s.Changes(context.Background(), 5, 10); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes(5) after compaction: err = %v, want ErrCompacted", err)
	}
	chs, err := s.Changes(context.Background(), 995, 10)
	if err != nil || len(chs) != 5 {
		t.Fatalf("Changes(995) = %d changes, %v", len(chs), err)
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if _, err := s.Apply(context.Background(), []store.Mutation{ban(fmt.Sprintf("10.%d.0.%d/32", w, i), "report", time.Time{})}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	chs, err := s.Changes(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range chs {
		if ch.Seq != uint64(i+1) {
			t.Fatalf("change %d has seq %d", i, ch.Seq)
		}
	}
	if len(chs) != 80 {
		t.Fatalf("%d changes, want 80", len(chs))
	}
}

func testCountReport(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := netip.MustParsePrefix("203.0.113.9/32")
	other := netip.MustParsePrefix("2001:db8::/64")
	w := 10 * time.Minute
	steps := []struct {
		key   netip.Prefix
		count int
		at    time.Time
		want  int
	}{
		{k, 2, t0, 2},
		{other, 1, t0, 1},
		{k, 2, t0.Add(5 * time.Minute), 4},
		{k, 1, t0.Add(11 * time.Minute), 3}, // the first report left the window
	}
	for i, st := range steps {
		got, err := s.CountReport(ctx, st.key, st.count, st.at, w)
		if err != nil {
			t.Fatal(err)
		}
		if got != st.want {
			t.Errorf("step %d: total %d, want %d", i, got, st.want)
		}
	}
}

// The window is (at-window, at]: an event exactly window old no longer
// counts.
func testCountReportWindowEdge(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := netip.MustParsePrefix("203.0.113.10/32")
	w := 10 * time.Minute
	if _, err := s.CountReport(ctx, k, 3, t0, w); err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		at   time.Time
		want int
	}{
		{t0.Add(w - time.Millisecond), 3},
		{t0.Add(w), 0},
	} {
		got, err := s.CountReport(ctx, k, 0, st.at, w)
		if err != nil {
			t.Fatal(err)
		}
		if got != st.want {
			t.Errorf("at t0+%s: total %d, want %d", st.at.Sub(t0), got, st.want)
		}
	}
}

// Concurrent reports of one key are each counted once.
func testCountReportConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := netip.MustParsePrefix("2001:db8:7::/64")
	const callers, each = 8, 10
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				total, err := s.CountReport(ctx, k, 1, t0.Add(time.Duration(c*each+i)*time.Millisecond), time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if total < 1 || total > callers*each {
					t.Errorf("a report returned total %d, want 1..%d", total, callers*each)
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.CountReport(ctx, k, 0, t0.Add(time.Second), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got != callers*each {
		t.Fatalf("after %d concurrent reports: total %d", callers*each, got)
	}
}

// Mutations in one batch apply in order and only effective ones are recorded.
func testMixedBatch(t *testing.T, s store.Store) {
	ch := mustApply(t, s, ban("192.0.2.1/32", "manual", time.Time{}), ban("192.0.2.2/32", "report", time.Time{}), del("192.0.2.1/32", ""),
		store.Mutation{Op: store.PutAllow, Allow: &store.Allow{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Created: t0}},
		store.Mutation{Op: store.DeleteAllow, Prefix: netip.MustParsePrefix("172.16.0.0/12")})
	var got []string
	for _, m := range ch.Mutations {
		got = append(got, fmt.Sprintf("%s %v %s", m.Op, m.Prefix, m.Source))
	}
	want := []string{"put-decision invalid Prefix ", "put-decision invalid Prefix ", "delete-decision 192.0.2.1/32 manual", "put-allow invalid Prefix "}
	if !slices.Equal(got, want) {
		t.Fatalf("recorded %q, want %q", got, want)
	}
	st, _ := s.Load(context.Background())
	if !slices.Equal(keys(st), []string{"192.0.2.2/32|report"}) {
		t.Fatalf("left %v", keys(st))
	}
}

func testLargeBatch(t *testing.T, s store.Store) {
	var muts []store.Mutation
	for i := range 5000 {
		muts = append(muts, ban(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), "feed:big", time.Time{}))
	}
	if ch := mustApply(t, s, muts...); len(ch.Mutations) != 5000 {
		t.Fatalf("recorded %d mutations", len(ch.Mutations))
	}
	st, err := s.Load(context.Background())
	if err != nil || len(st.Decisions) != 5000 {
		t.Fatalf("loaded %d decisions, %v", len(st.Decisions), err)
	}
}

func testFleetHosts(t *testing.T, s store.Store) {
	fs, ok := s.(store.FleetStore)
	if !ok {
		t.Fatalf("%T does not implement store.FleetStore", s)
	}
	ctx := context.Background()
	a, b := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("2001:db8::5")
	if err := fs.PutFleetHosts(ctx, []store.FleetHost{{Addr: a, Name: "web1", LastSeen: t0}, {Addr: b, Name: "web1", LastSeen: t0}}); err != nil {
		t.Fatal(err)
	}
	// An older sighting does not overwrite a newer one.
	if err := fs.PutFleetHosts(ctx, []store.FleetHost{{Addr: a, Name: "old", LastSeen: t0.Add(-time.Hour)}, {Addr: b, Name: "web2", LastSeen: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	hs, err := fs.FleetHosts(ctx, t0.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Addr]string{}
	for _, h := range hs {
		got[h.Addr] = h.Name
	}
	if len(got) != 2 || got[a] != "web1" || got[b] != "web2" {
		t.Fatalf("fleet hosts %+v", hs)
	}
	// Hosts not seen since are forgotten.
	hs, err = fs.FleetHosts(ctx, t0.Add(time.Minute))
	if err != nil || len(hs) != 1 || hs[0].Addr != b {
		t.Fatalf("after forgetting: %+v, %v", hs, err)
	}
	if hs, _ := fs.FleetHosts(ctx, t0.Add(-24*time.Hour)); len(hs) != 1 {
		t.Fatalf("a forgotten host came back: %+v", hs)
	}
}

// A long run of decision puts (which a store may write as one statement,
// or COPY) keeps every field, updates keys already there, and of two puts
// of one key the last wins.
func testDecisionRun(t *testing.T, s store.Store) {
	// One key already there: the run updates it.
	old := ban("192.0.0.9/32", "manual", t0.Add(99*time.Hour))
	old.Decision.Reason = "old"
	mustApply(t, s, old)
	var muts []store.Mutation
	for i := range 2500 {
		exp := time.Time{}
		if i%3 == 0 {
			exp = t0.Add(time.Duration(i) * time.Minute)
		}
		muts = append(muts, ban(fmt.Sprintf("192.0.%d.%d/32", i/256, i%256), "manual", exp))
	}
	again := ban("192.0.0.7/32", "manual", t0.Add(time.Hour))
	again.Decision.Reason = "second"
	muts = append(muts, again, del("192.0.0.8/32", "manual"))
	mustApply(t, s, muts...)
	st, err := s.Load(context.Background())
	if err != nil || len(st.Decisions) != 2499 {
		t.Fatalf("loaded %d decisions, %v", len(st.Decisions), err)
	}
	for _, d := range st.Decisions {
		a := d.Prefix.Addr().As4()
		n := int(a[2])*256 + int(a[3])
		want := time.Time{}
		if n%3 == 0 {
			want = t0.Add(time.Duration(n) * time.Minute)
		}
		if n == 7 {
			if d.Reason != "second" || !d.Expires.Equal(t0.Add(time.Hour)) {
				t.Fatalf("the last put of %s did not win: %+v", d.Prefix, d)
			}
			continue
		}
		if !d.Expires.Equal(want) || !d.Created.Equal(t0) || d.Reason != "test manual" || d.Action != store.ActionBan {
			t.Fatalf("%s loaded as %+v, want expiry %v", d.Prefix, d, want)
		}
	}
}
