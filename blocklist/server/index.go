package server

import (
	"iter"
	"net/netip"
)

// prefixIndex is a set of prefixes with a count of members per (family,
// length), so that "which members lie inside R" and "which members contain
// p" cost a few map lookups instead of a scan when the set is large.
//
// The families live in separate maps so that a scan for IPv6 members never
// walks a million IPv4 ones.
type prefixIndex struct {
	m [2]map[netip.Prefix]int // refcount, by family
	n [2][129]int
}

func newPrefixIndex() *prefixIndex {
	return &prefixIndex{m: [2]map[netip.Prefix]int{{}, {}}}
}

// all yields every member.
func (ix *prefixIndex) all() iter.Seq[netip.Prefix] {
	return func(yield func(netip.Prefix) bool) {
		for _, m := range ix.m {
			for p := range m {
				if !yield(p) {
					return
				}
			}
		}
	}
}

func fam(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1
}

func (ix *prefixIndex) len() int { return len(ix.m[0]) + len(ix.m[1]) }

func (ix *prefixIndex) has(p netip.Prefix) bool { return ix.m[fam(p)][p] > 0 }

// add increments p's refcount and reports whether p is new.
func (ix *prefixIndex) add(p netip.Prefix) bool {
	m := ix.m[fam(p)]
	m[p]++
	if m[p] == 1 {
		ix.n[fam(p)][p.Bits()]++
		return true
	}
	return false
}

// remove decrements p's refcount and reports whether p left the set.
func (ix *prefixIndex) remove(p netip.Prefix) bool {
	m := ix.m[fam(p)]
	c, ok := m[p]
	if !ok {
		return false
	}
	if c > 1 {
		m[p] = c - 1
		return false
	}
	delete(m, p)
	ix.n[fam(p)][p.Bits()]--
	return true
}

// topAncestor returns the shortest member that contains p, p included.
func (ix *prefixIndex) topAncestor(p netip.Prefix) (netip.Prefix, bool) {
	f := fam(p)
	for b := 0; b <= p.Bits(); b++ {
		if ix.n[f][b] == 0 {
			continue
		}
		a, _ := p.Addr().Prefix(b)
		if ix.m[f][a] > 0 {
			return a, true
		}
	}
	return netip.Prefix{}, false
}

// hasStrictAncestor reports whether a member strictly contains p.
func (ix *prefixIndex) hasStrictAncestor(p netip.Prefix) bool {
	f := fam(p)
	for b := 0; b < p.Bits(); b++ {
		if ix.n[f][b] == 0 {
			continue
		}
		a, _ := p.Addr().Prefix(b)
		if ix.m[f][a] > 0 {
			return true
		}
	}
	return false
}

// within calls fn for every member inside r, r included.
func (ix *prefixIndex) within(r netip.Prefix, fn func(netip.Prefix)) {
	f := fam(r)
	m := ix.m[f]
	maxBits := 32
	if f == 1 {
		maxBits = 128
	}
	// Cost of enumerating candidates level by level, against a full scan
	// of the family.
	cost := 0
	for b := r.Bits(); b <= maxBits && cost <= len(m); b++ {
		if ix.n[f][b] == 0 {
			continue
		}
		if d := b - r.Bits(); d >= 30 {
			cost = len(m) + 1
		} else {
			cost += 1 << d
		}
	}
	if cost > len(m) {
		for p := range m {
			if p.Bits() >= r.Bits() && r.Contains(p.Addr()) {
				fn(p)
			}
		}
		return
	}
	for b := r.Bits(); b <= maxBits; b++ {
		if ix.n[f][b] == 0 {
			continue
		}
		d := b - r.Bits()
		for i := uint64(0); i < 1<<d; i++ {
			p := subPrefix(r, b, i)
			if m[p] > 0 {
				fn(p)
			}
		}
	}
}

// subPrefix is the i-th prefix of length b inside r.
func subPrefix(r netip.Prefix, b int, i uint64) netip.Prefix {
	d := b - r.Bits()
	if r.Addr().Is4() {
		a := r.Addr().As4()
		v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		if d > 0 {
			v |= uint32(i) << (32 - b)
		}
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), b)
	}
	a := r.Addr().As16()
	for j := 0; j < d; j++ {
		if i&(1<<(d-1-j)) != 0 {
			pos := r.Bits() + j
			a[pos/8] |= 0x80 >> (pos % 8)
		}
	}
	return netip.PrefixFrom(netip.AddrFrom16(a), b)
}
