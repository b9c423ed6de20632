package guard_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion/guard"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type fakeReporter struct {
	mu   sync.Mutex
	got  []netip.Addr
	done chan struct{}
}

func (r *fakeReporter) Report(_ context.Context, a netip.Addr, reason string, count int, window time.Duration) error {
	r.mu.Lock()
	r.got = append(r.got, a)
	r.mu.Unlock()
	r.done <- struct{}{}
	return nil
}

var src = netip.MustParseAddr("198.51.100.9")

func TestBackoffGrowsAndCaps(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	g := guard.New(guard.Config{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second, SourceThreshold: 100, UserThreshold: 100}, guard.Options{Now: c.now})
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := g.Fail(src, "", "x"); got != w*time.Millisecond {
			t.Fatalf("failure %d: backoff %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
}

func TestLockoutPerSourceAndPerUser(t *testing.T) {
	tests := []struct {
		name     string
		fail     func(g *guard.Guard, i int)
		n        int
		checkSrc netip.Addr
		user     string
		want     string
	}{
		{"one source, many users", func(g *guard.Guard, i int) { g.Fail(src, "", "x") }, 3, src, "", "source locked out"},
		{"one user, many sources", func(g *guard.Guard, i int) {
			g.Fail(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), "alice", "x")
		}, 2, netip.MustParseAddr("192.0.2.1"), "alice", "user locked out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1e9, 0)}
			g := guard.New(guard.Config{SourceThreshold: 3, UserThreshold: 2, Lockout: time.Minute, Window: 10 * time.Minute}, guard.Options{Now: c.now})
			for i := range tt.n - 1 {
				tt.fail(g, i)
			}
			if locked, _ := g.Locked(tt.checkSrc, tt.user); locked {
				t.Fatal("locked before the threshold")
			}
			tt.fail(g, tt.n)
			locked, why := g.Locked(tt.checkSrc, tt.user)
			if !locked || why == "" || why[:len(tt.want)] != tt.want {
				t.Fatalf("Locked = %v %q, want %q", locked, why, tt.want)
			}
			c.advance(time.Minute + time.Second)
			if locked, _ := g.Locked(tt.checkSrc, tt.user); locked {
				t.Fatal("still locked after the lockout")
			}
		})
	}
}

func TestWindowForgetsOldFailures(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	g := guard.New(guard.Config{SourceThreshold: 3, Window: time.Minute}, guard.Options{Now: c.now})
	g.Fail(src, "", "x")
	g.Fail(src, "", "x")
	c.advance(2 * time.Minute)
	g.Fail(src, "", "x")
	if locked, _ := g.Locked(src, ""); locked {
		t.Fatal("failures outside the window counted")
	}
}

func TestSuccessForgetsUserNotSource(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	g := guard.New(guard.Config{SourceThreshold: 3, UserThreshold: 3}, guard.Options{Now: c.now})
	g.Fail(src, "alice", "x")
	g.Fail(src, "alice", "x")
	g.Success("alice")
	g.Fail(netip.MustParseAddr("192.0.2.1"), "alice", "x")
	if locked, _ := g.Locked(netip.MustParseAddr("192.0.2.1"), "alice"); locked {
		t.Fatal("user still counted after a success")
	}
	g.Fail(src, "bob", "x")
	if locked, _ := g.Locked(src, ""); !locked {
		t.Fatal("a success reset the source's count")
	}
}

func TestReportsOncePerWindow(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	r := &fakeReporter{done: make(chan struct{}, 10)}
	g := guard.New(guard.Config{SourceThreshold: 100, ReportThreshold: 3, Window: time.Minute}, guard.Options{Now: c.now, Reporter: r})
	for range 6 {
		g.Fail(src, "", "x")
	}
	<-r.done
	c.advance(2 * time.Minute)
	for range 3 {
		g.Fail(src, "", "x")
	}
	<-r.done
	select {
	case <-r.done:
		t.Fatal("reported more than once per window")
	case <-time.After(50 * time.Millisecond):
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != 2 || r.got[0] != src {
		t.Fatalf("reports: %v", r.got)
	}
}

func TestTrackingIsBounded(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	g := guard.New(guard.Config{MaxTracked: 100}, guard.Options{Now: c.now})
	for i := range 1000 {
		g.Fail(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), "", "x")
	}
	if s, _ := g.Tracked(); s > 100 {
		t.Fatalf("tracking %d sources, bound is 100", s)
	}
}
