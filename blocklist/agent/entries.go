package agent

import (
	"net/netip"
	"slices"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
)

// comparePrefix orders prefixes by address, then length: the order the
// wire format decodes in, IPv4 first.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// sortedUnique returns ps sorted and without duplicates, reusing ps when it
// already is (a decoded snapshot always is).
func sortedUnique(ps []netip.Prefix) []netip.Prefix {
	if !slices.IsSortedFunc(ps, comparePrefix) {
		ps = slices.Clone(ps)
		slices.SortFunc(ps, comparePrefix)
	}
	return slices.Compact(ps)
}

// applyDelta returns cur (sorted, unique) with remove taken out and then
// add put in, sorted and unique, in one merge pass: a prefix in both lists
// stays, as [firewall.Delta] and the wire format say. Entries are matched
// exactly: removing 10.0.0.0/24 does not touch an entry 10.0.0.7/32. cur
// is not modified.
func applyDelta(cur, add, remove []netip.Prefix) []netip.Prefix {
	add = sortedUnique(slices.Clone(add))
	gone := make(map[netip.Prefix]struct{}, len(remove))
	for _, r := range remove {
		gone[r] = struct{}{}
	}
	out := make([]netip.Prefix, 0, len(cur)+len(add))
	keep := func(p netip.Prefix) {
		if n := len(out); n > 0 && out[n-1] == p {
			return
		}
		out = append(out, p)
	}
	keepCur := func(p netip.Prefix) {
		if _, ok := gone[p]; !ok {
			keep(p)
		}
	}
	i, j := 0, 0
	for i < len(cur) && j < len(add) {
		if comparePrefix(cur[i], add[j]) <= 0 {
			keepCur(cur[i])
			i++
		} else {
			keep(add[j])
			j++
		}
	}
	for ; i < len(cur); i++ {
		keepCur(cur[i])
	}
	for ; j < len(add); j++ {
		keep(add[j])
	}
	return out
}

// firewallDelta turns a change of entries (cur to next by removing remove
// and adding add) into the change of blocked addresses a backend applies.
// Taking an entry away unblocks all its addresses, so every entry of next
// that overlaps a removed one (a /32 inside a lifted /30, the /24 around a
// lifted /32) is added again after the removals; the result is then what
// a full replace of next gives. blocklistd publishes entries that never
// overlap, which makes this a no-op, but the agent does not rely on it.
func firewallDelta(next, add, remove []netip.Prefix) firewall.Delta {
	d := firewall.Delta{Add: slices.Clone(add), Remove: remove}
	if len(remove) == 0 || len(next) == 0 {
		return d
	}
	// Lengths present in next, per family: the only ones an ancestor of a
	// removed prefix can have.
	var lens4 uint64
	var lens6 [3]uint64
	for _, p := range next {
		if p.Addr().Is4() {
			lens4 |= 1 << p.Bits()
		} else {
			lens6[p.Bits()/64] |= 1 << (p.Bits() % 64)
		}
	}
	seen := map[netip.Prefix]bool{}
	again := func(p netip.Prefix) {
		if !seen[p] {
			seen[p] = true
			d.Add = append(d.Add, p)
		}
	}
	for _, r := range remove {
		// Entries inside r sort from r itself to r's last address.
		i, _ := slices.BinarySearchFunc(next, r, comparePrefix)
		last := netipx.PrefixLastIP(r)
		for ; i < len(next) && next[i].Addr().BitLen() == r.Addr().BitLen() && next[i].Addr().Compare(last) <= 0; i++ {
			again(next[i])
		}
		// Entries around r: its ancestors of the lengths next holds.
		for bits := range r.Bits() {
			has := lens4&(1<<bits) != 0
			if r.Addr().Is6() {
				has = lens6[bits/64]&(1<<(bits%64)) != 0
			}
			if !has {
				continue
			}
			up := netip.PrefixFrom(r.Addr(), bits).Masked()
			if _, ok := slices.BinarySearchFunc(next, up, comparePrefix); ok {
				again(up)
			}
		}
	}
	return d
}

// changedEntries returns the entries of next that cur lacks (came) and
// those of cur that next lacks (went); cur and next are sorted and
// unique, and only add and remove can differ.
func changedEntries(cur, next, add, remove []netip.Prefix) (came, went []netip.Prefix) {
	has := func(ps []netip.Prefix, p netip.Prefix) bool {
		_, ok := slices.BinarySearchFunc(ps, p, comparePrefix)
		return ok
	}
	for _, p := range sortedUnique(slices.Clone(add)) {
		if !has(cur, p) {
			came = append(came, p)
		}
	}
	for _, p := range sortedUnique(slices.Clone(remove)) {
		if has(cur, p) && !has(next, p) {
			went = append(went, p)
		}
	}
	return came, went
}

// countFamilies counts IPv4 and IPv6 entries.
func countFamilies(ps []netip.Prefix) (v4, v6 int) {
	for _, p := range ps {
		if p.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	return v4, v6
}
