package agent

import (
	"net/netip"
	"slices"
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

// applyDelta returns cur (sorted, unique) with remove taken out and add
// put in, sorted and unique, in one merge pass. cur is not modified.
func applyDelta(cur, add, remove []netip.Prefix) []netip.Prefix {
	add = sortedUnique(slices.Clone(add))
	gone := make(map[netip.Prefix]struct{}, len(remove))
	for _, r := range remove {
		gone[r] = struct{}{}
	}
	out := make([]netip.Prefix, 0, len(cur)+len(add))
	keep := func(p netip.Prefix) {
		if _, ok := gone[p]; ok {
			return
		}
		if n := len(out); n > 0 && out[n-1] == p {
			return
		}
		out = append(out, p)
	}
	i, j := 0, 0
	for i < len(cur) && j < len(add) {
		if comparePrefix(cur[i], add[j]) <= 0 {
			keep(cur[i])
			i++
		} else {
			keep(add[j])
			j++
		}
	}
	for ; i < len(cur); i++ {
		keep(cur[i])
	}
	for ; j < len(add); j++ {
		keep(add[j])
	}
	return out
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
