package detect

import (
	"net/netip"
	"time"
)

// tracker counts matches per address in a sliding window.
type tracker struct {
	count  int
	window time.Duration
	max    int
	addrs  map[netip.Addr]*history
}

type history struct {
	times []time.Time // the last count matches, oldest first
	quiet time.Time   // no new report before this
}

func newTracker(count int, window time.Duration, max int) *tracker {
	return &tracker{count: count, window: window, max: max, addrs: make(map[netip.Addr]*history)}
}

// hit records a match from a at now and reports whether a now crossed the
// threshold, with the number of matches in the window.
func (t *tracker) hit(a netip.Addr, now time.Time) (n int, fire bool) {
	h := t.addrs[a]
	if h == nil {
		if len(t.addrs) >= t.max {
			t.sweep(now)
		}
		h = &history{}
		t.addrs[a] = h
	}
	cut := now.Add(-t.window)
	i := 0
	for i < len(h.times) && !h.times[i].After(cut) {
		i++
	}
	h.times = append(h.times[i:], now)
	if len(h.times) > t.count {
		h.times = h.times[len(h.times)-t.count:]
	}
	if len(h.times) < t.count || now.Before(h.quiet) {
		return len(h.times), false
	}
	n = len(h.times)
	h.times = h.times[:0]
	h.quiet = now.Add(t.window)
	return n, true
}

// sweep forgets addresses with nothing in the window and no quiet period
// running; if that is not enough, it forgets arbitrary ones, so a flood
// of distinct addresses costs bounded memory.
func (t *tracker) sweep(now time.Time) {
	cut := now.Add(-t.window)
	for a, h := range t.addrs {
		if (len(h.times) == 0 || !h.times[len(h.times)-1].After(cut)) && !now.Before(h.quiet) {
			delete(t.addrs, a)
		}
	}
	for a := range t.addrs {
		if len(t.addrs) < t.max {
			break
		}
		delete(t.addrs, a)
	}
}
