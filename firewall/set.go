package firewall

import (
	"cmp"
	"context"
	"encoding/binary"
	"iter"
	"math/bits"
	"net/netip"
	"slices"

	"go4.org/netipx"
)

// Set is a normalized blocklist (sorted, overlaps and neighbours merged)
// in a compact form for large loads: 8 bytes per IPv4 range and 32 per
// IPv6 range, where a netipx.IPSet takes 48 and its builder copies it
// several times. A million-entry feed fits in a few megabytes.
//
// Build one with [Policy.BuildSet]; hand it to a backend that implements
// [SetReplacer], or convert it with [Set.IPSet].
type Set struct {
	v4 []range4
	v6 []range6
}

type range4 struct{ from, to uint32 }

type u128 struct{ hi, lo uint64 }

type range6 struct{ from, to u128 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func (a u128) next() (u128, bool) {
	lo, carry := bits.Add64(a.lo, 1, 0)
	hi, over := bits.Add64(a.hi, 0, carry)
	return u128{hi, lo}, over == 0
}

func (a u128) prev() u128 {
	lo, borrow := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - borrow, lo}
}

func cmp128(a, b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr6(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func from4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func from6(v u128) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.hi)
	binary.BigEndian.PutUint64(b[8:], v.lo)
	return netip.AddrFrom16(b)
}

// setBuilder collects ranges in any order; set sorts and merges them.
type setBuilder struct {
	v4 []range4
	v6 []range6
}

func (b *setBuilder) addPrefix(p netip.Prefix) {
	r := netipx.RangeOfPrefix(p)
	if p.Addr().Is4() {
		b.v4 = append(b.v4, range4{addr4(r.From()), addr4(r.To())})
	} else {
		b.v6 = append(b.v6, range6{addr6(r.From()), addr6(r.To())})
	}
}

func (b *setBuilder) set() *Set {
	slices.SortFunc(b.v4, func(x, y range4) int { return cmp.Compare(x.from, y.from) })
	slices.SortFunc(b.v6, func(x, y range6) int { return cmp128(x.from, y.from) })
	s := &Set{v4: merge4(b.v4), v6: merge6(b.v6)}
	b.v4, b.v6 = nil, nil
	return s
}

// merge4 merges sorted ranges in place: overlapping or adjacent ones
// become one.
func merge4(rs []range4) []range4 {
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (r.from <= out[n-1].to || out[n-1].to != ^uint32(0) && r.from == out[n-1].to+1) {
			out[n-1].to = max(out[n-1].to, r.to)
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

func merge6(rs []range6) []range6 {
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			next, ok := last.to.next()
			if !last.to.less(r.from) || ok && next == r.from {
				if last.to.less(r.to) {
					last.to = r.to
				}
				continue
			}
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// subtract removes allow from s, in place.
func (s *Set) subtract(allow *netipx.IPSet) {
	var a4 []range4
	var a6 []range6
	for _, r := range allow.Ranges() {
		if r.From().Is4() {
			a4 = append(a4, range4{addr4(r.From()), addr4(r.To())})
		} else {
			a6 = append(a6, range6{addr6(r.From()), addr6(r.To())})
		}
	}
	s.v4 = subtract4(s.v4, a4)
	s.v6 = subtract6(s.v6, a6)
}

// subtract4 removes the sorted, disjoint ranges cut from the sorted,
// disjoint ranges rs. Splitting a range around a hole can grow the list,
// so the result is a new slice.
func subtract4(rs, cut []range4) []range4 {
	if len(cut) == 0 {
		return rs
	}
	out := make([]range4, 0, len(rs)+len(cut))
	j := 0
	for _, r := range rs {
		for j < len(cut) && cut[j].to < r.from {
			j++
		}
		for k := j; k < len(cut) && cut[k].from <= r.to; k++ {
			c := cut[k]
			if c.from > r.from {
				out = append(out, range4{r.from, c.from - 1})
			}
			if c.to >= r.to {
				r.from, r.to = 1, 0 // emptied
				break
			}
			r.from = c.to + 1
		}
		if r.from <= r.to {
			out = append(out, r)
		}
	}
	return out
}

func subtract6(rs, cut []range6) []range6 {
	if len(cut) == 0 {
		return rs
	}
	out := make([]range6, 0, len(rs)+len(cut))
	j := 0
	for _, r := range rs {
		for j < len(cut) && cut[j].to.less(r.from) {
			j++
		}
		empty := false
		for k := j; k < len(cut) && !r.to.less(cut[k].from); k++ {
			c := cut[k]
			if r.from.less(c.from) {
				out = append(out, range6{r.from, c.from.prev()})
			}
			if !c.to.less(r.to) {
				empty = true
				break
			}
			r.from, _ = c.to.next()
		}
		if !empty {
			out = append(out, r)
		}
	}
	return out
}

// Len is the number of ranges in s.
func (s *Set) Len() int { return len(s.v4) + len(s.v6) }

// Ranges yields the ranges of s in order, IPv4 first.
func (s *Set) Ranges() iter.Seq[netipx.IPRange] {
	return func(yield func(netipx.IPRange) bool) {
		for _, r := range s.v4 {
			if !yield(netipx.IPRangeFrom(from4(r.from), from4(r.to))) {
				return
			}
		}
		for _, r := range s.v6 {
			if !yield(netipx.IPRangeFrom(from6(r.from), from6(r.to))) {
				return
			}
		}
	}
}

// Singles4 yields the single IPv4 addresses of s as 4 big-endian bytes,
// and Ranges4 its wider IPv4 ranges (first and last address); likewise
// for IPv6. Backends encode these straight into their wire format.
func (s *Set) Singles4() iter.Seq[[4]byte] {
	return func(yield func([4]byte) bool) {
		for _, r := range s.v4 {
			if r.from == r.to {
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], r.from)
				if !yield(b) {
					return
				}
			}
		}
	}
}

// Singles6 yields the single IPv6 addresses of s.
func (s *Set) Singles6() iter.Seq[[16]byte] {
	return func(yield func([16]byte) bool) {
		for _, r := range s.v6 {
			if r.from == r.to {
				if !yield(from6(r.from).As16()) {
					return
				}
			}
		}
	}
}

// Wide yields the ranges of s wider than one address, in order.
func (s *Set) Wide() iter.Seq[netipx.IPRange] {
	return func(yield func(netipx.IPRange) bool) {
		for r := range s.Ranges() {
			if r.From() != r.To() && !yield(r) {
				return
			}
		}
	}
}

// IPSet converts s for backends that take a netipx.IPSet.
func (s *Set) IPSet() *netipx.IPSet {
	var b netipx.IPSetBuilder
	for r := range s.Ranges() {
		b.AddRange(r)
	}
	set, _ := b.IPSet() // valid ranges only: no error
	return set
}

// SetReplacer is implemented by backends that load a [Set] without
// converting it to a netipx.IPSet (nftables). Same contract as
// [Backend.Replace].
type SetReplacer interface {
	ReplaceSet(ctx context.Context, s *Set) error
}

// Replace loads s into b, directly when b implements [SetReplacer].
func Replace(ctx context.Context, b Backend, s *Set) error {
	if sr, ok := b.(SetReplacer); ok {
		return sr.ReplaceSet(ctx, s)
	}
	return b.Replace(ctx, s.IPSet())
}

func (st *Stats) countSet(s *Set) {
	for _, r := range s.v4 {
		st.Ranges++
		singles, wider := prefixCount4(r.from, r.to)
		st.Addresses += singles
		st.Prefixes += wider
	}
	for _, r := range s.v6 {
		st.Ranges++
		if r.from == r.to {
			st.Addresses++
			continue
		}
		for _, p := range netipx.IPRangeFrom(from6(r.from), from6(r.to)).Prefixes() {
			if p.IsSingleIP() {
				st.Addresses++
			} else {
				st.Prefixes++
			}
		}
	}
}

// prefixCount4 counts the CIDR prefixes that cover from..to exactly:
// single addresses (/32) and wider ones.
func prefixCount4(from, to uint32) (singles, wider int) {
	for {
		// The largest aligned block starting at from that fits.
		size := uint64(1) << bits.TrailingZeros32(from)
		if from == 0 {
			size = 1 << 32
		}
		for uint64(from)+size-1 > uint64(to) {
			size >>= 1
		}
		if size == 1 {
			singles++
		} else {
			wider++
		}
		end := uint64(from) + size - 1
		if end >= uint64(to) {
			return singles, wider
		}
		from = uint32(end + 1)
	}
}
