package agent

import (
	"math/rand/v2"
	"time"
)

// Clock is the time source of the follow loop; tests pass a fake one.
type Clock interface {
	Now() time.Time
	// After is time.After.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// After is time.After.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Backoff computes retry delays: exponential from Min to Max, each delay
// drawn uniformly from its upper half so that agents that lost blocklistd
// together do not return together.
type Backoff struct {
	Min, Max time.Duration
	// Rand returns a number in [0, 1); nil means math/rand/v2.
	Rand func() float64

	failures int
}

// Next returns the delay before the next attempt and counts a failure.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < b.failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	b.failures++
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return d/2 + time.Duration(r()*float64(d/2))
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.failures = 0 }

// Failures is the number of failures since the last Reset.
func (b *Backoff) Failures() int { return b.failures }
