package firewalltest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
)

// Prefixes draws prefixes from a small nested universe, so that random
// sequences keep hitting the cases where sets go wrong: a /32 inside a /30
// inside a /24 inside a /16 (and the /8 above them), an IPv6 /128 inside a
// /64 inside a /48, neighbours that merge, and the same prefix again.
// The same seed gives the same prefixes.
type Prefixes struct {
	r *rand.Rand
}

// NewPrefixes returns a generator seeded with seed.
func NewPrefixes(seed uint64) *Prefixes {
	return &Prefixes{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Rand is the generator's source, for callers that draw their own choices
// from the same seed.
func (g *Prefixes) Rand() *rand.Rand { return g.r }

// Lengths the universe uses, widest first.
var (
	lengths4 = []int{8, 16, 24, 30, 31, 32}
	lengths6 = []int{32, 48, 64, 126, 128}
)

// Prefix returns one prefix: mostly IPv4, mostly narrow, all inside
// 10.0.0.0/8 and 2001:db8::/32 so that they nest and touch.
func (g *Prefixes) Prefix() netip.Prefix {
	r := g.r
	if r.IntN(4) == 0 {
		// 2001:db8:0:X::/48 .. /128: a few /48s, /64s and addresses.
		var a [16]byte
		copy(a[:], netip.MustParseAddr("2001:db8::").AsSlice())
		a[5] = byte(r.IntN(2))  // 2001:db8:000X::/48
		a[7] = byte(r.IntN(3))  // :000Y: /64 inside it
		a[15] = byte(r.IntN(8)) // the last byte: a handful of addresses
		bits := lengths6[weighted(r, []int{1, 4, 6, 4, 12})]
		return netip.PrefixFrom(netip.AddrFrom16(a), bits).Masked()
	}
	// 10.A.B.C: A in {77, 78}, B in 0..3, C in 88..103 (.92/30 holds .94).
	a := [4]byte{10, byte(77 + r.IntN(2)), byte(r.IntN(4)), byte(88 + r.IntN(16))}
	bits := lengths4[weighted(r, []int{1, 3, 5, 6, 4, 16})]
	return netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked()
}

// weighted picks an index with the given relative weights.
func weighted(r *rand.Rand, w []int) int {
	total := 0
	for _, x := range w {
		total += x
	}
	n := r.IntN(total)
	for i, x := range w {
		if n < x {
			return i
		}
		n -= x
	}
	return len(w) - 1
}

// List returns up to n prefixes, duplicates included.
func (g *Prefixes) List(n int) []netip.Prefix {
	out := make([]netip.Prefix, g.r.IntN(n+1))
	for i := range out {
		out[i] = g.Prefix()
	}
	return out
}

// Delta returns a random delta: additions and removals that overlap each
// other and the set, the same prefix in both lists, duplicates.
func (g *Prefixes) Delta() firewall.Delta {
	d := firewall.Delta{Add: g.List(4), Remove: g.List(3)}
	if len(d.Add) > 0 && g.r.IntN(4) == 0 {
		d.Remove = append(d.Remove, d.Add[g.r.IntN(len(d.Add))]) // add and remove one prefix
	}
	return d
}

// Equal reports whether two sets hold the same addresses, and if not,
// describes the difference.
func Equal(got, want *netipx.IPSet) (bool, string) {
	var extra, missing netipx.IPSetBuilder
	extra.AddSet(got)
	extra.RemoveSet(want)
	missing.AddSet(want)
	missing.RemoveSet(got)
	e, _ := extra.IPSet()
	m, _ := missing.IPSet()
	if len(e.Ranges()) == 0 && len(m.Ranges()) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("blocked but should not be: %v; should be blocked but is not: %v", e.Prefixes(), m.Prefixes())
}

// Shrink returns a short subsequence of ops that still fails. run replays
// a sequence from a fresh start and returns how many operations it ran up
// to and including the first failing one, or 0 when none fails; run(ops)
// must fail. Shrink cuts the tail after the failure, then drops chunks of
// halving size and finally single operations while the failure remains
// (delta debugging), so the result is 1-minimal: dropping any one
// operation makes it pass.
func Shrink[T any](ops []T, run func([]T) int) []T {
	n := run(ops)
	if n == 0 {
		return ops
	}
	cur := append([]T(nil), ops[:n]...)
	for chunk := max(len(cur)/2, 1); ; chunk /= 2 {
		for i := 0; i+chunk <= len(cur); {
			try := append(append([]T(nil), cur[:i]...), cur[i+chunk:]...)
			if n := run(try); n > 0 {
				cur = try[:n]
				continue
			}
			i += chunk
		}
		if chunk == 1 {
			return cur
		}
	}
}
