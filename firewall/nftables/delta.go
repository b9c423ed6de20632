//go:build linux

package nftables

import (
	"net/netip"

	nft "github.com/google/nftables"
	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
)

// enumerateBits bounds the removals whose single addresses are deleted
// one by one (2^12 = 4096 addresses); wider removals look the hash sets up
// in the kernel instead.
const enumerateBits = 12

type deltaPlan struct {
	addSingles, delSingles []netip.Addr
	addRanges, delRanges   []netipx.IPRange
	ranges                 *netipx.IPSet // the interval sets afterwards
}

// elements counts the set elements the plan touches.
func (p deltaPlan) elements() int {
	return len(p.addSingles) + len(p.delSingles) + 2*(len(p.addRanges)+len(p.delRanges))
}

func (p deltaPlan) empty() bool {
	return len(p.addSingles)+len(p.delSingles)+len(p.addRanges)+len(p.delRanges) == 0
}

// planDelta works out the element changes for d. Single addresses go to
// and from the hash sets directly. Interval sets must never hold
// overlapping intervals, so the new intervals are computed from the cached
// ones (merging additions, splitting around removals) and only the
// intervals that differ are deleted and added. When an entry is both added
// and removed, the removal wins.
func (b *Backend) planDelta(d firewall.Delta) (deltaPlan, error) {
	var plan deltaPlan
	var rb, removed netipx.IPSetBuilder
	rb.AddSet(b.ranges)
	for _, p := range d.Add {
		if p.Bits() != p.Addr().BitLen() {
			rb.AddPrefix(p.Masked())
		}
	}
	var wide []netip.Prefix
	for _, p := range d.Remove {
		p = p.Masked()
		rb.RemovePrefix(p)
		removed.AddPrefix(p)
		switch {
		case p.IsSingleIP():
			plan.delSingles = append(plan.delSingles, p.Addr())
		case p.Addr().BitLen()-p.Bits() <= enumerateBits:
			for a := p.Addr(); a.IsValid() && p.Contains(a); a = a.Next() {
				plan.delSingles = append(plan.delSingles, a)
			}
		default:
			wide = append(wide, p)
		}
	}
	rem, err := removed.IPSet()
	if err != nil {
		return plan, err
	}
	for _, p := range d.Add {
		if p.IsSingleIP() && !rem.Contains(p.Addr()) {
			plan.addSingles = append(plan.addSingles, p.Addr())
		}
	}
	if len(wide) > 0 {
		err := b.readSets(func(s *nft.Set, elems []nft.SetElement) error {
			for _, e := range elems {
				a, ok := netip.AddrFromSlice(e.Key)
				if !ok {
					continue
				}
				for _, w := range wide {
					if w.Contains(a) {
						plan.delSingles = append(plan.delSingles, a)
						break
					}
				}
			}
			return nil
		}, setAddr4, setAddr6)
		if err != nil {
			return plan, err
		}
	}
	if !touchesRanges(b.ranges, d) {
		// The common delta (single addresses in and out, none inside a
		// blocked range) leaves the interval sets alone.
		plan.ranges = b.ranges
		return plan, nil
	}
	newRanges, err := rb.IPSet()
	if err != nil {
		return plan, err
	}
	plan.ranges = newRanges
	plan.delRanges, plan.addRanges = diffRanges(b.ranges.Ranges(), newRanges.Ranges())
	return plan, nil
}

// diffRanges returns the ranges only in old and those only in new; both
// inputs are sorted and non-overlapping.
func diffRanges(old, new []netipx.IPRange) (gone, added []netipx.IPRange) {
	i, j := 0, 0
	for i < len(old) && j < len(new) {
		switch {
		case old[i] == new[j]:
			i++
			j++
		case less(old[i], new[j]):
			gone = append(gone, old[i])
			i++
		default:
			added = append(added, new[j])
			j++
		}
	}
	gone = append(gone, old[i:]...)
	added = append(added, new[j:]...)
	return gone, added
}

func less(a, b netipx.IPRange) bool {
	if c := a.From().Compare(b.From()); c != 0 {
		return c < 0
	}
	return a.To().Less(b.To())
}

// touchesRanges reports whether d can change the interval sets: it adds
// a prefix wider than one address, or removes anything that overlaps an
// installed interval.
func touchesRanges(ranges *netipx.IPSet, d firewall.Delta) bool {
	for _, p := range d.Add {
		if !p.IsSingleIP() {
			return true
		}
	}
	for _, p := range d.Remove {
		if ranges.OverlapsPrefix(p.Masked()) {
			return true
		}
	}
	return false
}
