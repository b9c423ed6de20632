package boltstore

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "blocklistd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCount(t *testing.T, s *Store, key netip.Prefix, n int, at time.Time, window time.Duration) int {
	t.Helper()
	total, err := s.CountReport(context.Background(), key, n, at, window)
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// reportValues returns the stored value of every report key.
func reportValues(t *testing.T, s *Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bReports).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Keys nobody reported for staleAfter are deleted by later commits; keys
// reported within it stay, even when their events left the window.
func TestSweepDropsStaleKeys(t *testing.T) {
	s := openTest(t)
	for i := range 100 {
		mustCount(t, s, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32), 1, t0, time.Minute)
	}
	recent := netip.MustParsePrefix("192.0.2.1/32")
	mustCount(t, s, recent, 1, t0.Add(2*time.Hour), time.Minute)
	if n := len(reportValues(t, s)); n != 101 {
		t.Fatalf("%d keys before the sweep, want 101", n)
	}
	now := t0.Add(staleAfter + time.Hour)
	fresh := netip.MustParsePrefix("2001:db8::/64")
	for i := range 20 {
		mustCount(t, s, fresh, 1, now.Add(time.Duration(i)*time.Second), time.Minute)
	}
	got := reportValues(t, s)
	if len(got) != 2 || got[recent.String()] == nil || got[fresh.String()] == nil {
		keys := []string{}
		for k := range got {
			keys = append(keys, k)
		}
		t.Fatalf("after the sweep: keys %v, want only %s and %s", keys, recent, fresh)
	}
}

// However many reports arrive, a key holds at most one event per second of
// the window, and totals stay exact.
func TestEventsCoalescePerSecond(t *testing.T) {
	s := openTest(t)
	k := netip.MustParsePrefix("203.0.113.9/32")
	for i := range 2000 {
		if got := mustCount(t, s, k, 1, t0.Add(time.Duration(i)*5*time.Millisecond), time.Minute); got != i+1 {
			t.Fatalf("report %d: total %d, want %d", i, got, i+1)
		}
	}
	if v := reportValues(t, s)[k.String()]; len(v) > 10*eventSize {
		t.Fatalf("10 seconds of reports stored in %d bytes, want at most %d", len(v), 10*eventSize)
	}
	// Second 9 (t0+9s..t0+9.995s) is stored at its latest report, so at
	// t0+69.5s all 200 of its reports still count (the documented up to a
	// second longer), and at t0+70s none does.
	if got := mustCount(t, s, k, 0, t0.Add(69500*time.Millisecond), time.Minute); got != 200 {
		t.Fatalf("at t0+69.5s: total %d, want 200", got)
	}
	if got := mustCount(t, s, k, 0, t0.Add(70*time.Second), time.Minute); got != 0 {
		t.Fatalf("at t0+70s: total %d, want 0", got)
	}
	if v, ok := reportValues(t, s)[k.String()]; ok {
		t.Fatalf("a key with no event in the window is still stored (%d bytes)", len(v))
	}
}

// A corrupt value fails its own report, not the others in the commit, and
// the sweep removes it.
func TestCorruptEventsFailClosed(t *testing.T) {
	s := openTest(t)
	bad, good := netip.MustParsePrefix("192.0.2.66/32"), netip.MustParsePrefix("192.0.2.1/32")
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bReports).Put([]byte(bad.String()), []byte("junk")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CountReport(context.Background(), bad, 1, t0, time.Minute); err == nil {
		t.Fatal("counting onto a corrupt value succeeded")
	}
	if got := mustCount(t, s, good, 3, t0, time.Minute); got != 3 {
		t.Fatalf("other key: total %d, want 3", got)
	}
	if _, ok := reportValues(t, s)[bad.String()]; ok {
		t.Fatal("the sweep left the corrupt value")
	}
}
