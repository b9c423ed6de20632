package bastion

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestStartupsAdmitMatchesReference: seeded random admissions and
// releases from a few sources, checked against a plain count: a slot is
// given exactly when neither the total nor the source's count is at its
// limit, and the counts never exceed the limits.
func TestStartupsAdmitMatchesReference(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 5))
		total, per := 1+r.IntN(20), 1+r.IntN(8)
		var s startups
		ref := map[netip.Addr]int{}
		sum := 0
		srcs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("198.51.100.7")}
		for range 1000 {
			src := srcs[r.IntN(len(srcs))]
			if r.IntN(3) > 0 {
				limit, _ := s.admit(src, total, per)
				want := ""
				switch {
				case ref[src] >= per:
					want = limitStartupsPerSource
				case sum >= total:
					want = limitStartups
				}
				if limit != want {
					t.Fatalf("seed %d: admit(%v) = %q, want %q (source %d/%d, total %d/%d)", seed, src, limit, want, ref[src], per, sum, total)
				}
				if limit == "" {
					ref[src]++
					sum++
				}
			} else if ref[src] > 0 {
				s.done(src)
				ref[src]--
				sum--
			}
			if got := s.loggingIn(); got != sum || got > total {
				t.Fatalf("seed %d: %d logging in, want %d (limit %d)", seed, got, sum, total)
			}
		}
	}
}
