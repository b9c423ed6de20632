package boltstore_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
	"github.com/rampart-sec/rampart/blocklist/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "blocklistd.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSecondOpenerFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocklistd.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := boltstore.Open(path); err == nil {
		s2.Close()
		t.Fatal("second Open of a held file succeeded")
	}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func open(t *testing.T, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func count(t *testing.T, s *boltstore.Store, key netip.Prefix, n int, at time.Time) int {
	t.Helper()
	total, err := s.CountReport(context.Background(), key, n, at, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// Report counts outlive the process: a reopened file still counts the
// earlier events, and still drops those that left the window.
func TestReportsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocklistd.db")
	k := netip.MustParsePrefix("203.0.113.9/32")
	other := netip.MustParsePrefix("2001:db8::/64")
	s := open(t, path)
	count(t, s, k, 2, t0)
	count(t, s, k, 2, t0.Add(5*time.Minute))
	count(t, s, other, 7, t0.Add(5*time.Minute))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CountReport(context.Background(), k, 1, t0, time.Minute); err == nil {
		t.Fatal("CountReport after Close succeeded")
	}

	s = open(t, path)
	if got := count(t, s, k, 1, t0.Add(6*time.Minute)); got != 5 {
		t.Fatalf("after reopen: total %d, want 5 (2+2 before, 1 now)", got)
	}
	if got := count(t, s, other, 1, t0.Add(6*time.Minute)); got != 8 {
		t.Fatalf("after reopen: other key total %d, want 8", got)
	}
	s.Close()

	s = open(t, path)
	// The first event (t0) is now outside the 10-minute window.
	if got := count(t, s, k, 1, t0.Add(11*time.Minute)); got != 4 {
		t.Fatalf("after second reopen at t0+11m: total %d, want 4 (2 at 5m, 1 at 6m, 1 now)", got)
	}
	// The window is (at-10m, at]: the reports at 5m are on its edge, out.
	if got := count(t, s, k, 0, t0.Add(15*time.Minute)); got != 2 {
		t.Fatalf("at t0+15m: total %d, want 2 (the reports at 6m and 11m)", got)
	}
}

// Concurrent reports share commits, yet each is counted once and each sees
// the total up to and including itself.
func TestConcurrentCountReport(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "blocklistd.db"))
	keys := []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8:1::/64")}
	const callers, each = 32, 20
	var mu sync.Mutex
	seen := map[netip.Prefix][]int{}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				k := keys[(c+i)%len(keys)]
				total, err := s.CountReport(context.Background(), k, 1, t0.Add(time.Duration(i)*time.Second), time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[k] = append(seen[k], total)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		got := seen[k]
		slices.Sort(got)
		want := make([]int, callers*each/len(keys))
		for i := range want {
			want[i] = i + 1
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: totals returned %v, want each of 1..%d once", k, got, len(want))
		}
		if final := count(t, s, k, 0, t0.Add(time.Minute)); final != len(want) {
			t.Errorf("%s: final total %d, want %d", k, final, len(want))
		}
	}
}

// A report confirmed by CountReport survives the process being killed
// right after.
func TestReportsSurviveKill(t *testing.T) {
	if path := os.Getenv("BOLTSTORE_REPORTER_DB"); path != "" {
		reportUntilKilled(path)
		return
	}
	path := filepath.Join(t.TempDir(), "blocklistd.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestReportsSurviveKill$")
	cmd.Env = append(os.Environ(), "BOLTSTORE_REPORTER_DB="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	confirmed := 0
	sc := bufio.NewScanner(out)
	for confirmed < 300 && sc.Scan() {
		if confirmed, err = strconv.Atoi(sc.Text()); err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if confirmed < 300 {
		t.Fatalf("child stopped after %d confirmed reports", confirmed)
	}
	s := open(t, path)
	total, err := s.CountReport(context.Background(), reporterKey, 0, t0.Add(time.Hour), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if total < confirmed {
		t.Fatalf("after kill: %d reports counted, but %d were confirmed", total, confirmed)
	}
	t.Logf("%d reports confirmed before the kill, %d counted after", confirmed, total)
}

var reporterKey = netip.MustParsePrefix("198.51.100.7/32")

// reportUntilKilled runs in the child of TestReportsSurviveKill: it prints
// the number of confirmed reports after each one.
func reportUntilKilled(path string) {
	s, err := boltstore.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 1; ; i++ {
		if _, err := s.CountReport(context.Background(), reporterKey, 1, t0.Add(time.Duration(i)*time.Millisecond), 2*time.Hour); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(i)
	}
}
